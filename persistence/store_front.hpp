#pragma once

#include "protocols/supervisor.hpp"

#include <functional>

#include "protocols/actors.hpp"
#include "protocols/breaker.hpp"

#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <cstddef>
#include <vector>

namespace emporium::persistence {

struct store_front_config {
  /// Parts (one entity's write each) per transaction at most.
  size_t max_group = 256;
  /// Parts waiting for one worker at most; beyond it a write is answered
  /// `unavailable` at once, with nothing written (every queue is bounded).
  size_t max_pending = 8192;
  /// The breaker around PostgreSQL: a group (or ping) whose every part
  /// failed `unavailable` (refused, broken, timed out) is a failed call, and so
  /// is a group still in flight after `hung_after` while PostgreSQL answers
  /// no ping either (a hung server answers nothing, not even errors; a slow
  /// one under load still answers a ping on the probe's own connection). While open, writes and store reads are
  /// answered `unavailable` at once, before anything reaches PostgreSQL (the
  /// node's /readyz pings the store, so it turns 503 with it); after
  /// `open_timeout` one call goes through as the probe and closes it.
  protocols::breaker_config breaker{std::chrono::milliseconds{2000}, 3, 0.5,
                                    std::chrono::milliseconds{1000}, 1};
  std::chrono::milliseconds hung_after{1000};
  /// A write that has waited this long without its transaction starting is
  /// answered `unavailable` and never starts: an error answer never commits
  /// later, and a slow database does not build a queue of stale writes.
  std::chrono::milliseconds start_within{2000};
  /// Set while the breaker is not closed (optional).
  std::shared_ptr<std::atomic<bool>> unreachable;
  /// Starts a worker in place of one that crashed, after `restart`'s backoff
  /// (its lane refuses writes meanwhile). Null: a dead lane stays dead.
  std::function<caf::actor()> respawn_worker;
  protocols::restart_policy restart;
};

/// The store's one handle, on the scheduler (it only queues and forwards).
/// Group commit across entities: the writes of one entity (a pair, a cart, an
/// order) always go to the same worker, so they stay in order on one
/// connection; whatever arrives for a worker while it commits a group waits
/// and goes as its next group, one transaction for many entities. Each part is
/// answered with its own outcome once its group's transaction has ended, and
/// never before: a group in flight has no timeout (PostgreSQL's
/// statement_timeout bounds it; a worker that dies answers its group
/// `unavailable`). Reads go round robin. A breaker (see store_front_config)
/// answers for PostgreSQL while it is down or hung.
/// `workers` answer write_group with group_outcome, and the store's reads;
/// `probe` (optional) answers only ping_atom, on a connection of its own: it
/// answers readiness, and tells a hung server from a slow group (without it, a
/// group in flight for hung_after trips the breaker by itself).
protocols::store_actor spawn_store_front(caf::actor_system& sys, std::vector<caf::actor> workers,
                                         store_front_config cfg = {}, caf::actor probe = {});

} // namespace emporium::persistence
