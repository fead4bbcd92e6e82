#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string_view>

namespace emporium::protocols {

struct breaker_config {
  std::chrono::milliseconds window{10000};       ///< calls older than this are forgotten
  size_t minimum_calls = 5;                      ///< no verdict on fewer calls in the window
  double failure_rate = 0.5;                     ///< opens at or above this share of failures
  std::chrono::milliseconds open_timeout{5000};  ///< open this long before probing
  size_t half_open_probes = 1;                   ///< trial calls let through while half-open
};

/// A circuit breaker over a sliding time window, for one dependency (a payment
/// provider, PostgreSQL). Closed: calls go through and their outcomes are
/// counted; when a failure makes at least `minimum_calls` in the window failed
/// at `failure_rate` or more it opens (a success never opens it). Open: calls
/// are refused until `open_timeout` passed, then it is half-open: up to `half_open_probes` trial calls go through; a success
/// closes it (with an empty window), a failure opens it again. Time is passed
/// in, so tests drive it. Only transient failures count: a payment decline is
/// an answer, not a failure. Not thread-safe: one actor owns it.
class breaker {
public:
  enum class state { closed, open, half_open };
  using time_point = std::chrono::steady_clock::time_point;

  explicit breaker(breaker_config cfg = {}) : cfg_(cfg) {
  }

  /// Whether a call may go out now (half-open: takes one probe slot).
  bool allow(time_point now);

  /// The outcome of a call that allow() let through.
  void record(bool success, time_point now);

  /// Opens it now, whatever the window holds: for a failure that is
  /// unambiguous on its own (a dependency that answers nothing at all).
  void trip(time_point now) {
    if (current(now) != state::open)
      open(now);
  }

  state current(time_point now);
  const breaker_config& config() const noexcept { return cfg_; }

  /// How many times it opened (for metrics and tests).
  uint64_t times_opened() const noexcept { return opened_count_; }

private:
  void open(time_point now);
  void forget_before(time_point cutoff);

  breaker_config cfg_;
  state state_ = state::closed;
  std::deque<std::pair<time_point, bool>> calls_; ///< (when, failed) in the window
  size_t failures_ = 0;
  time_point opened_at_{};
  size_t probes_out_ = 0;
  uint64_t opened_count_ = 0;
};

std::string_view to_string(breaker::state s) noexcept;

} // namespace emporium::protocols
