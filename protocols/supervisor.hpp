#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace emporium::protocols {

struct restart_policy {
  caf::timespan base = std::chrono::milliseconds{100}; ///< first backoff
  caf::timespan max = std::chrono::seconds{30};        ///< backoff cap
  caf::timespan stable_after = std::chrono::seconds{60}; ///< alive this long: backoff starts over
  uint64_t seed = 0; ///< jitter; 0: random
};

enum class jitter { full, upper_half };

/// The wait before restarting after the `crashes`-th crash in a row (>= 1):
/// with cap = min(max, base * 2^(crashes-1)), uniform in [0, cap] (full
/// jitter) or in [cap/2, cap] (upper_half).
caf::timespan restart_delay(const restart_policy& p, int crashes, std::minstd_rand& rng,
                            jitter j = jitter::full);

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

/// `n` long-lived actors on the request path behind stable indices (the
/// router's shard actors, the gateway's bridges): a caller takes the current
/// handle of a slot, so a restart costs the request path no extra hop. A
/// watcher actor monitors them; one that dies abnormally is spawned again
/// into its slot after restart_delay's backoff (counted per slot,
/// `emporium_actor_restarts_total{kind}`). Until then its slot names the dead
/// instance: a request sent there is answered at once by CAF
/// (`request_receiver_down`, i.e. `unavailable`), nothing queues. stop() or
/// the destructor ends the members and the watcher.
class actor_group {
public:
  using spawner = std::function<caf::actor(caf::actor_system&, size_t index)>;

  actor_group(caf::actor_system& sys, std::string kind, size_t n, spawner spawn,
              restart_policy policy = {});
  ~actor_group();
  actor_group(const actor_group&) = delete;
  actor_group& operator=(const actor_group&) = delete;

  size_t size() const noexcept { return n_; }

  /// The current instance of slot `i` (any thread).
  caf::actor operator[](size_t i) const;

  /// Every slot's current instance.
  std::vector<caf::actor> all() const;

  /// Ends the watcher and with it the members (user_shutdown: not restarted).
  void stop();

private:
  struct slot {
    std::atomic<std::shared_ptr<const caf::actor>> current;
  };
  size_t n_;
  std::shared_ptr<slot[]> slots_; ///< shared with the watcher
  caf::actor watcher_;
};

} // namespace emporium::protocols
