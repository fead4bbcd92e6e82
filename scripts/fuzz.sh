#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets (clang, ASan + UBSan) in build-fuzz
# and runs each for FUZZ_SECONDS (default 60) from its seed corpus in
# fuzz/corpus/<target> (read only; new inputs go to a scratch directory). A
# crash stops it with the reproducer's path; `FUZZ_TARGETS="jwt envelope"`
# runs a subset. Prints each target's executions and execs/s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${FUZZ_SECONDS:-60}
limit=(-max_total_time="$seconds")
[ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
targets=${FUZZ_TARGETS:-"requests jwt ws_frames envelope"}
build=${FUZZ_BUILD:-build-fuzz}
export CCACHE_DIR=${CCACHE_DIR:-$root/.var/ccache}
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMPORIUM_FUZZ=ON >/dev/null
fi
cmake --build "$build" -j"${JOBS:-2}" --target fuzzers
scratch=$(mktemp -d /tmp/emporium-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for t in $targets; do
  mkdir -p "$scratch/$t" "$scratch/crash-$t"
  log="$scratch/$t.log"
  start=$(date +%s)
  if ! "$build/fuzz/fuzz_$t" "${limit[@]}" -print_final_stats=1 \
       -artifact_prefix="$scratch/crash-$t/" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
       "$scratch/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
    tail -60 "$log"
    mkdir -p fuzz/crashes && cp "$scratch/crash-$t"/* fuzz/crashes/ 2>/dev/null || true
    echo "fuzz_$t: FAILED (reproducer copied to fuzz/crashes/)" >&2
    exit 1
  fi
  runs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{print $2}')
  secs=$(( $(date +%s) - start )); [ "$secs" -gt 0 ] || secs=1
  echo "fuzz_$t: $runs executions in $secs s ($((runs / secs)) execs/s), $(ls "$scratch/$t" | wc -l) new inputs, no crash"
done
