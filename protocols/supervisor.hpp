#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <functional>
#include <random>
#include <string>

namespace emporium::protocols {

struct restart_policy {
  caf::timespan base = std::chrono::milliseconds{100}; ///< first backoff
  caf::timespan max = std::chrono::seconds{30};        ///< backoff cap
  caf::timespan stable_after = std::chrono::seconds{60}; ///< alive this long: backoff starts over
  uint64_t seed = 0; ///< jitter; 0: random
};

/// The wait before restarting after the `crashes`-th crash in a row (>= 1):
/// uniform in [0, min(max, base * 2^(crashes-1))] (full jitter).
caf::timespan restart_delay(const restart_policy& p, int crashes, std::minstd_rand& rng);

/// A stable handle for one long-lived actor (the payment adapter, the outbox
/// relay): it spawns the child with `spawn` and passes every message on to
/// it. When the child dies abnormally it is started again, from its durable
/// state as any start does, after restart_delay's backoff;
/// `emporium_actor_restarts_total{kind}` counts it. Requests are passed on as
/// the supervisor's own (at most `max_outstanding` unanswered, beyond that
/// `unavailable` at once), so those the child had not answered when it died
/// are answered `unavailable` rather than never (CAF 0.17 drops a dead
/// actor's promises silently). While it is down every request is answered
/// `unavailable` at once and other messages are dropped (nothing queues
/// unbounded). A normal or shutdown exit of the child ends the supervisor;
/// its own exit takes the child down.
caf::actor spawn_supervised(caf::actor_system& sys, std::string kind,
                            std::function<caf::actor(caf::actor_system&)> spawn,
                            restart_policy policy = {}, size_t max_outstanding = 4096);

} // namespace emporium::protocols
