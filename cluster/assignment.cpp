#include "cluster/assignment.hpp"

namespace emporium::cluster {

namespace {

struct fnv1a {
  uint32_t h = 2166136261u;
  void add(std::string_view part) noexcept {
    for (unsigned char c : part) {
      h ^= c;
      h *= 16777619u;
    }
  }
};

/// A 64-bit mix of (node, shard): FNV-1a of the node id, then splitmix64 of
/// it with the shard, so neighbouring shards do not favour one node.
uint64_t weight(std::string_view node, uint32_t shard) noexcept {
  fnv1a f;
  f.add(node);
  uint64_t x = (uint64_t{f.h} << 32) ^ shard;
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

} // namespace

uint32_t shard_of(protocols::entity_kind kind, std::string_view id, uint32_t shards) noexcept {
  fnv1a f;
  f.add(protocols::kind_name(kind));
  f.add(":");
  f.add(id);
  return f.h % shards;
}

uint32_t shard_of(const protocols::entity_key& key, uint32_t shards) noexcept {
  return shard_of(key.kind, key.id, shards);
}

std::string_view owner_of(uint32_t shard, const std::vector<std::string>& nodes) noexcept {
  std::string_view best;
  uint64_t best_weight = 0;
  for (const auto& n : nodes) {
    auto w = weight(n, shard);
    if (best.empty() || w > best_weight || (w == best_weight && n < best)) {
      best = n;
      best_weight = w;
    }
  }
  return best;
}

std::vector<uint32_t> assigned_to(std::string_view self, const std::vector<std::string>& nodes,
                                  uint32_t shards) {
  std::vector<uint32_t> out;
  for (uint32_t s = 0; s < shards; ++s)
    if (owner_of(s, nodes) == self)
      out.push_back(s);
  return out;
}

} // namespace emporium::cluster
