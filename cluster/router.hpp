#pragma once

#include "protocols/entity.hpp"

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace emporium::cluster {

/// Spawns the entity for an id. `home` is
/// the router actor hosting it: an entity that finds nothing stored sends it
/// (passivate_atom, its address) to be stopped once no request for it is under way.
using entity_factory
  = std::function<caf::actor(caf::actor_system&, const std::string& id, const caf::actor& home)>;

struct router_config {
  uint32_t shards = 1024;       ///< stable shard ids; the cluster will assign them to nodes
  size_t shard_actors = 8;      ///< local actors serving the shards (shard id mod this)
  caf::timespan passivate_after = std::chrono::minutes{10}; ///< 0: never passivate
};

/// Entity addressing: key -> stable shard id (FNV-1a of "kind:id" mod shards)
/// -> the shard's router actor -> the entity actor, spawned on first use (it
/// recovers its own state) and passivated after `passivate_after` idle.
/// Callers go through cluster/seam.hpp (ask, ask_all, tell), which sends
/// (route_atom, key, message) to shard_for(key); the message is delegated,
/// so the entity answers the caller directly. Nothing outside the router
/// keeps entity handles.
class entity_router {
public:
  entity_router(caf::actor_system& sys, router_config cfg,
                std::map<protocols::entity_kind, entity_factory> factories);

  /// The stable shard id of a key (FNV-1a of "kind:id").
  uint32_t shard_of(const protocols::entity_key& key) const noexcept;

  /// The actor serving the key's shard.
  const caf::actor& shard_for(const protocols::entity_key& key) const noexcept;

  /// shard_for as the entities' resolver.
  protocols::entity_resolver resolver() const;

  const router_config& config() const noexcept { return cfg_; }

  /// Stops the shard actors and every entity they run.
  void stop();

private:
  router_config cfg_;
  std::vector<caf::actor> shard_actors_;
};

} // namespace emporium::cluster
