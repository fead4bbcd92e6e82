#pragma once

#include "cluster/shard_table.hpp"
#include "protocols/actors.hpp"

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace emporium::cluster {

/// Opens a connection to a peer's cluster port and answers its endpoint
/// (blocking, bounded: it runs in a detached actor). The app supplies it:
/// plain middleman or mutual TLS.
using peer_connector = std::function<caf::expected<caf::actor>(const std::string& host,
                                                               uint16_t port)>;

/// The router's shard actors as they are now (they are restarted after a crash).
using shard_actors_fn = std::function<std::vector<caf::actor>()>;

struct coordinator_config {
  protocols::member self; ///< id, incarnation, http and cluster addresses
  std::chrono::milliseconds lease{1500}; ///< EMPORIUM_SHARD_LEASE_MS
  uint32_t shards = 1024;
  /// Newly acquired shards (their unsettled sagas may need resuming).
  std::function<void(const std::vector<uint32_t>&)> on_acquired;
  /// The node has handed off every shard and shows `left`: the process may exit.
  std::function<void()> on_left;
  /// This node's endpoint (the router's): sent to the peers it dials, so
  /// that one connection serves both directions.
  caf::actor endpoint;
  /// Told `owners_atom` besides the shard actors when the routes change.
  std::vector<caf::actor> also_notify;
  /// Live entities on this node (reported in the membership table).
  std::function<int64_t()> actor_count;
  /// The dialer blocks in `connect` (a BASP handshake), so it has a thread
  /// of its own; a test whose connector answers at once keeps it on the
  /// (deterministic) scheduler, which takes no messages from other threads.
  bool dial_in_own_thread = true;
};

/// The cluster coordinator of one node. Every lease/3 it runs one round
/// against PostgreSQL (membership_actor): heartbeat, renew its leases,
/// acquire the free shards the assignment gives it, release the ones it
/// handed off. From the answer it computes the assignment (rendezvous over
/// the live `joining`/`up` members), updates the shard table (its leases,
/// routes to the owners of the others) and tells the router's shard actors.
/// Shards assigned elsewhere are handed off: dropped from the table (no new
/// request reaches them here), their entities stopped once no write of theirs
/// is under way, then released. A lease not renewed in time is dropped the
/// same way. `(drain_atom)` (SIGTERM, or the drain route via the membership
/// table) hands everything off, then `on_left`.
caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg,
                             protocols::membership_actor membership,
                             std::shared_ptr<shard_table> table,
                             shard_actors_fn shard_actors, peer_connector connect);

} // namespace emporium::cluster
