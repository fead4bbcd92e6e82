#pragma once

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

/// Membership and shard leases, as the coordinator asks the persistence layer
/// for them (one `cluster_tick` per round) and as nodes tell each other.
namespace emporium::protocols {

/// The shard and lease epoch an entity writes under. Every durable write
/// carries it and PostgreSQL refuses the write in the same statement when the
/// epoch is no longer the shard's current one (fencing). epoch 0: unfenced,
/// which a store configured with `require_fence` refuses.
struct fence {
  uint32_t shard = 0;
  int64_t epoch = 0;
  bool operator==(const fence&) const = default;
};

/// One row of the membership table.
struct member {
  std::string id;
  std::string incarnation;     ///< random per process start: leases are owned by it
  std::string http_address;    ///< host:port of its gateway
  std::string cluster_address; ///< host:port of its CAF middleman
  std::string status;          ///< joining | up | draining | down | left
  int64_t actors = 0;          ///< live entities it hosts
  bool alive = false;          ///< heartbeat younger than a lease
  bool drain_requested = false; ///< set by the drain route on any node
  bool operator==(const member&) const = default;
};

/// One shard's lease row.
struct shard_lease {
  uint32_t shard = 0;
  std::string node;        ///< owner's node id, empty when free
  std::string incarnation; ///< owner's incarnation, empty when free
  int64_t epoch = 0;       ///< grows on every acquisition and release
  bool live = false;       ///< not yet expired (PostgreSQL's clock)
  bool operator==(const shard_lease&) const = default;
};

/// One round of the coordinator, in one transaction: heartbeat `self`,
/// release `release` (held by self.incarnation), renew every other lease of
/// self.incarnation, acquire those of `acquire` that are free or expired, all
/// for `lease_ms`; answers the whole table.
struct cluster_tick {
  member self;
  std::vector<uint32_t> acquire;
  std::vector<uint32_t> release;
  int64_t lease_ms = 0;
  bool operator==(const cluster_tick&) const = default;
};

/// Asks `node` to drain (the drain route, on any node) -> ok_atom; not_found
/// for an unknown or departed node.
struct request_drain {
  std::string node;
  bool operator==(const request_drain&) const = default;
};

struct cluster_state {
  std::vector<member> members;
  std::vector<shard_lease> leases; ///< every shard that has a row
  bool operator==(const cluster_state&) const = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fence& x) {
  return f(caf::meta::type_name("fence"), x.shard, x.epoch);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member& x) {
  return f(caf::meta::type_name("member"), x.id, x.incarnation, x.http_address,
           x.cluster_address, x.status, x.actors, x.alive, x.drain_requested);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shard_lease& x) {
  return f(caf::meta::type_name("shard_lease"), x.shard, x.node, x.incarnation, x.epoch, x.live);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_tick& x) {
  return f(caf::meta::type_name("cluster_tick"), x.self, x.acquire, x.release, x.lease_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, request_drain& x) {
  return f(caf::meta::type_name("request_drain"), x.node);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cluster_state& x) {
  return f(caf::meta::type_name("cluster_state"), x.members, x.leases);
}

} // namespace emporium::protocols
