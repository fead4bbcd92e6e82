#pragma once

#include "cluster/live_feed.hpp"
#include "cluster/shard_table.hpp"
#include "protocols/cluster.hpp"
#include "protocols/entity.hpp"
#include "protocols/supervisor.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace emporium::cluster {

/// Spawns the entity for an id. `home` is the router actor hosting it: an
/// entity that finds nothing stored sends it (passivate_atom, its address) to
/// be stopped once no request for it is under way. `under` is the shard epoch
/// every durable write of the entity carries (fencing; epoch 0 on a router
/// without a shard table).
using entity_factory = std::function<caf::actor(caf::actor_system&, const std::string& id,
                                                const caf::actor& home,
                                                const protocols::fence& under)>;

struct router_config {
  uint32_t shards = 1024;       ///< stable shard ids, assigned to nodes by the coordinator
  size_t shard_actors = 8;      ///< local actors serving the shards (shard id mod this)
  caf::timespan passivate_after = std::chrono::minutes{10}; ///< 0: never passivate
  /// How long a request may wait for its shard to get an owner (a handoff, a
  /// dead owner's lease running out) before it is answered 503.
  caf::timespan transit_timeout = std::chrono::seconds{8};
  /// Deadline of a request forwarded to the owning node.
  caf::timespan remote_timeout = std::chrono::seconds{10};
  size_t max_waiting = 4096; ///< requests waiting for an owner, per shard actor
  /// Set while this node cannot reach PostgreSQL (the store's breaker): its
  /// leases lapse and no owner can appear through it, so a request for a
  /// shard without a reachable owner is answered 503 at once, not after
  /// transit_timeout (optional).
  std::shared_ptr<const std::atomic<bool>> unreachable;
  /// Supervision of entities: one that dies abnormally (not passivated,
  /// handed off or fenced) is a crash. An order is restarted at once and told
  /// to resume its saga; the others on their next request. A second crash
  /// within `entity_restart.stable_after` holds the key broken for a backoff
  /// (base doubling per crash up to max, the upper half jittered): its
  /// requests answer 503 at once, an order restarts when it ends.
  protocols::restart_policy entity_restart{std::chrono::seconds{1}, std::chrono::seconds{60},
                                           std::chrono::seconds{60}};
  size_t max_crash_records = 10000; ///< keys remembered per shard actor (bounded)
  /// The shard actors and the feed relay themselves: a crashed one is
  /// started again after this backoff (its entities go down with it and
  /// recover on next use; what it held in flight is answered 503 by the
  /// callers' deadlines).
  protocols::restart_policy restart;
};

/// Entity addressing: key -> stable shard id (cluster/assignment.hpp) -> the
/// shard actor -> the entity actor, spawned on first use (it recovers its
/// own state) and passivated after `passivate_after` idle.
///
/// With a shard table (a cluster node), a shard actor serves only shards
/// this node holds a lease on; a request for any other shard goes to the
/// owner's endpoint (`forward_atom`), and waits, bounded, while the shard has
/// no owner. A forwarded request for a shard this node does not hold is
/// refused with `fenced` (nothing happened), and the sender tries again.
/// Callers go through cluster/seam.hpp; nothing outside keeps entity handles.
class entity_router {
public:
  entity_router(caf::actor_system& sys, router_config cfg,
                std::map<protocols::entity_kind, entity_factory> factories,
                std::shared_ptr<shard_table> table = nullptr,
                std::shared_ptr<live_feed> feed = nullptr);

  /// The stable shard id of a key (FNV-1a of "kind:id").
  uint32_t shard_of(const protocols::entity_key& key) const noexcept;

  /// The actor serving the key's shard (its current instance).
  caf::actor shard_for(const protocols::entity_key& key) const;

  /// shard_for as the entities' resolver.
  protocols::entity_resolver resolver() const;

  const router_config& config() const noexcept { return cfg_; }

  /// The shard actors (supervised: a slot's instance changes after a crash).
  const std::shared_ptr<protocols::actor_group>& shard_actors() const noexcept {
    return shard_actors_;
  }

  /// The actor peers send forwarded requests to (this node's endpoint); it
  /// also takes the other nodes' live changes for this node's feed.
  const caf::actor& endpoint() const noexcept { return endpoint_; }

  /// Sends this node's live changes to every peer's endpoint (with a table
  /// and a feed; else invalid). Told `owners_atom` when the routes change.
  const caf::actor& feed_relay() const noexcept { return relay_; }

  /// Stops the shard actors and every entity they run.
  void stop();

private:
  router_config cfg_;
  std::shared_ptr<protocols::actor_group> shard_actors_;
  caf::actor endpoint_;
  caf::actor relay_;
};

} // namespace emporium::cluster
