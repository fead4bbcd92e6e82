#pragma once

#include "protocols/entity.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

/// Which shard a key lives in, and which node a shard belongs to: pure
/// functions of the key and of the membership, the same on every node.
namespace emporium::cluster {

/// The stable shard id of a key: FNV-1a of "kind:id" mod `shards`, the same
/// across processes and builds.
uint32_t shard_of(const protocols::entity_key& key, uint32_t shards) noexcept;
uint32_t shard_of(protocols::entity_kind kind, std::string_view id, uint32_t shards) noexcept;

/// Rendezvous (highest random weight) hashing: the shard goes to the node
/// whose hash of (node, shard) is highest. A join moves only the shards the
/// newcomer wins (about 1/n of them), a leave only the leaver's.
std::string_view owner_of(uint32_t shard, const std::vector<std::string>& nodes) noexcept;

/// The shards `self` is assigned among `nodes` (the members that may own
/// shards: joining or up, alive), ascending.
std::vector<uint32_t> assigned_to(std::string_view self, const std::vector<std::string>& nodes,
                                  uint32_t shards);

} // namespace emporium::cluster
