#pragma once

#include "protocols/breaker.hpp"
#include "payments/transport.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace emporium::payments {

struct provider_config {
  std::string name;     ///< "primary", "secondary": in metrics and in orders
  std::string base_url; ///< http://host:port
};

struct adapter_config {
  std::vector<provider_config> providers; ///< in order of preference
  protocols::breaker_config breaker;                 ///< one breaker per provider
  int max_attempts = 3;                   ///< per call and provider, on transient errors only
  std::chrono::milliseconds backoff_base{50};
  std::chrono::milliseconds backoff_max{1000};
  std::shared_ptr<transport> net;
  uint64_t seed = 0; ///< of the jitter; 0: random
};

/// Spawns the payment adapter: payment_call -> payment_outcome. It speaks the
/// contract's provider protocol through `net` and never blocks.
/// - authorize without a provider goes to the first provider whose breaker
///   lets it through (the secondary while the primary is open); every other op
///   goes to the provider it names;
/// - 5xx or no answer is transient: counted by that provider's breaker and
///   retried on it up to `max_attempts` with exponential backoff and full
///   jitter; after that (or once its breaker opened) the same call goes on at
///   once to the next provider it may use, with the same idempotency key. So
///   a breaker only decides where a call starts; a decline (200) is final;
/// - every usable provider tried to the end, or every breaker open:
///   `unavailable`; a 4xx or an unreadable answer: `internal` (a bug, not an
///   outage; not retried).
caf::actor spawn_payment_adapter(caf::actor_system& sys, adapter_config cfg);

} // namespace emporium::payments
