#!/usr/bin/env bash
# Installs the Debian packages emporium builds and tests with. Idempotent: a
# fast no-op when everything is already there.
set -euo pipefail
packages=(
  build-essential cmake ccache pkg-config
  libcaf-dev
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libpqxx-dev librdkafka-dev libspdlog-dev doctest-dev libssl-dev prometheus-cpp-dev
  postgresql
  python3 curl kcat
  clang libclang-rt-14-dev libfuzzer-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
