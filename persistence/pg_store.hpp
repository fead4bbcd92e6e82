#pragma once

#include "protocols/actors.hpp"

#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace emporium::persistence {

struct pg_store_config {
  std::string dsn;
  size_t connections = 4; ///< detached workers, one connection each
  /// PostgreSQL cancels a statement running longer (a lock wait, an overload):
  /// the store then answers `unavailable` with nothing written, a definite
  /// outcome the actors can rely on.
  std::chrono::milliseconds statement_timeout{5000};
  /// Refuse writes without a shard epoch (a node's store; tests of the store
  /// alone write unfenced).
  bool require_fence = false;
  /// Set while the store's breaker is not closed (PostgreSQL unreachable or
  /// hung from here); optional.
  std::shared_ptr<std::atomic<bool>> unreachable;
};

/// The DSN with libpq client timeouts added unless already set (connect 5 s,
/// TCP keepalives, tcp_user_timeout 15 s): a server that vanishes without
/// closing the socket must not block a worker, and the pairs waiting on it,
/// for the kernel's ~15 min of TCP retransmissions. Works for URLs and
/// key=value strings.
std::string with_client_timeouts(const std::string& dsn);

/// Spawns the PostgreSQL store: `connections` detached workers (libpqxx blocks,
/// so it never runs on the scheduler) behind one dispatching handle. A pair's
/// batches always use the same worker, so pipelined batches stay in order;
/// reads go round robin. A lost connection answers `unavailable` and is
/// reopened on the next request.
protocols::store_actor spawn_pg_store(caf::actor_system& sys, const pg_store_config& cfg);

/// One of the store's workers alone (a connection of its own, detached): it
/// answers write_group with group_outcome, one transaction per group, and the
/// store's reads. spawn_pg_store puts them behind its front; tests of the
/// group commit send it groups directly.
caf::actor spawn_pg_worker(caf::actor_system& sys, const pg_store_config& cfg);

/// The membership table and shard leases (migration 006): one detached worker
/// with a connection of its own, so a coordinator's round never waits behind
/// the store's writes. Uses cfg.dsn and cfg.statement_timeout.
protocols::membership_actor spawn_membership(caf::actor_system& sys, const pg_store_config& cfg);

} // namespace emporium::persistence
