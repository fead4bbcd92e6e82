#include "protocols/breaker.hpp"

namespace emporium::protocols {

void breaker::forget_before(time_point cutoff) {
  while (!calls_.empty() && calls_.front().first < cutoff) {
    failures_ -= calls_.front().second ? 1 : 0;
    calls_.pop_front();
  }
}

void breaker::open(time_point now) {
  state_ = state::open;
  opened_at_ = now;
  probes_out_ = 0;
  calls_.clear();
  failures_ = 0;
  ++opened_count_;
}

breaker::state breaker::current(time_point now) {
  if (state_ == state::open && now - opened_at_ >= cfg_.open_timeout) {
    state_ = state::half_open;
    probes_out_ = 0;
  }
  return state_;
}

bool breaker::allow(time_point now) {
  switch (current(now)) {
    case state::closed:
      return true;
    case state::open:
      return false;
    case state::half_open:
      if (probes_out_ >= cfg_.half_open_probes)
        return false;
      ++probes_out_;
      return true;
  }
  return false;
}

void breaker::record(bool success, time_point now) {
  switch (current(now)) {
    case state::half_open:
      if (success) {
        state_ = state::closed;
        calls_.clear();
        failures_ = 0;
      } else {
        open(now);
      }
      return;
    case state::open:
      return; // a late answer of a call made before it opened
    case state::closed:
      break;
  }
  forget_before(now - cfg_.window);
  calls_.emplace_back(now, !success);
  failures_ += success ? 0 : 1;
  if (!success && calls_.size() >= cfg_.minimum_calls // a success never opens it
      && static_cast<double>(failures_) >= cfg_.failure_rate * static_cast<double>(calls_.size()))
    open(now);
}

std::string_view to_string(breaker::state s) noexcept {
  switch (s) {
    case breaker::state::closed: return "closed";
    case breaker::state::open: return "open";
    case breaker::state::half_open: return "half_open";
  }
  return "unknown";
}

} // namespace emporium::protocols
