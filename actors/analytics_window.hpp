#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <iterator>

namespace emporium::actors {

/// Counts of `N` figures over sliding windows of 1 s to 24 h, in buckets
/// that coarsen with age: 1 s for the last 2 min, 1 min for the last 2 h,
/// 1 h up to 25 h; older ones are dropped. A window sums the buckets that
/// start inside it, so it is exact to the second up to 2 min, to the minute
/// up to 2 h and to the hour beyond (docs/analytics.md). Events may arrive
/// out of order (partitions, replay): each lands in the bucket of its own
/// time. Memory: a figure series that is busy every second holds at most
/// 120 + 120 + 25 buckets of 12 + 4N bytes; an idle one holds none.
template <size_t N>
class windowed_counts {
public:
  using values = std::array<int64_t, N>;

  /// Adds `n` to figure `field` at time `t_s` (seconds since the epoch).
  void add(int64_t t_s, size_t field, int64_t n) {
    auto width = width_at(t_s, newest_);
    auto start = t_s - t_s % width;
    if (t_s > newest_)
      newest_ = t_s;
    // Newest last: search from the back, where nearly every event lands.
    auto it = buckets_.end();
    while (it != buckets_.begin() && std::prev(it)->start > start)
      --it;
    if (it != buckets_.begin()) {
      auto& b = *std::prev(it);
      if (b.start <= start && start < b.start + b.width) {
        b.counts[field] += static_cast<int32_t>(n);
        return;
      }
    }
    bucket b{start, static_cast<int32_t>(width), {}};
    b.counts[field] = static_cast<int32_t>(n);
    buckets_.insert(it, b);
    if (buckets_.size() > 2 * max_buckets) // bounded without queries too
      compact(newest_);
  }

  /// The figures of the events in (now_s - window_s, now_s], by bucket start.
  /// Coarsens first (it only ever merges buckets, which never moves an event
  /// across a window edge finer than the bucket it is in).
  values sum(int64_t now_s, int64_t window_s) {
    compact(now_s);
    values out{};
    for (auto it = buckets_.rbegin(); it != buckets_.rend() && it->start > now_s - window_s; ++it)
      if (it->start <= now_s)
        for (size_t i = 0; i < N; ++i)
          out[i] += it->counts[i];
    return out;
  }

  /// Merges buckets into the width their age calls for and drops those older
  /// than 25 h.
  void compact(int64_t now_s) {
    if (now_s > newest_)
      newest_ = now_s;
    std::deque<bucket> merged;
    for (auto& b : buckets_) {
      if (b.start <= newest_ - max_age_s)
        continue;
      auto width = width_at(b.start, newest_);
      auto start = b.start - b.start % width;
      if (!merged.empty() && merged.back().start == start) {
        for (size_t i = 0; i < N; ++i)
          merged.back().counts[i] += b.counts[i];
      } else {
        merged.push_back(bucket{start, static_cast<int32_t>(std::max<int64_t>(width, b.width)),
                                b.counts});
      }
    }
    buckets_ = std::move(merged);
  }

  bool empty() const noexcept { return buckets_.empty(); }
  size_t bucket_count() const noexcept { return buckets_.size(); }

  static constexpr int64_t max_window_s = 24 * 3600;

private:
  static constexpr int64_t max_age_s = 25 * 3600;
  static constexpr size_t max_buckets = 120 + 120 + 25;

  struct bucket {
    int64_t start;
    int32_t width;
    std::array<int32_t, N> counts;
  };

  /// The width a bucket starting at `t_s` gets when the newest event is at `newest_s`.
  static int64_t width_at(int64_t t_s, int64_t newest_s) {
    auto age = newest_s - t_s;
    return age < 120 ? 1 : age < 7200 ? 60 : 3600;
  }

  std::deque<bucket> buckets_; ///< by start, oldest first
  int64_t newest_ = 0;
};

} // namespace emporium::actors
