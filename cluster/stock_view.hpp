#pragma once

#include "protocols/inventory.hpp"

#include <atomic>
#include <array>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace emporium::cluster {

class shard_table;

using protocols::stock_level;

/// The read model of this node's stock pairs: each stock actor publishes its
/// *durable* level here whenever it changes (before it answers the requests of
/// that write). The gateway answers pair reads from it on the I/O thread
/// without a message round trip; a pair not here (never started on this node,
/// or its last level withdrawn) is asked through the router.
///
/// An idle pair is data here, not an actor: a pair that passivates (no live
/// holds, nothing under way) or hands its shard off keeps its last durable
/// level, stamped with the shard's lease epoch it was written under. It is
/// answered only while this node holds that same lease (an epoch changes with
/// every acquisition, so a level from an earlier tenure is never answered);
/// its next write restarts the actor from PostgreSQL. A pair that stopped for
/// any other reason (a version conflict, a fenced write, a crash) is
/// withdrawn. While `unreachable` is set (this node cannot reach PostgreSQL, so
/// its leases lapse) a pair is still answered with the last durable level of
/// the last lease held (stale only if another node, still reaching the
/// database, took the shard over and wrote meanwhile).
///
/// The SKU actor publishes its list of pairs too, so the SKU-wide read is
/// answered here when every pair of that list is.
///
/// Bounded by the pairs this node hosts (durable data, not a queue). 64 shards, each a mutex over a hash map whose nodes come from the
/// shard's own memory pool (so a million idle pairs do not pin the pages that
/// their stopped actors were freed from); a lookup holds one shard's lock for
/// a hash probe and a copy of the level; no lock is shared by all requests.
class stock_view {
public:
  /// A view without leases (tests): every published level is answered.
  stock_view() = default;

  explicit stock_view(std::shared_ptr<const shard_table> leases,
                      std::shared_ptr<const std::atomic<bool>> unreachable = nullptr);

  /// Sets the pair's durable level, written under lease `epoch` of the SKU's
  /// shard by actor incarnation `owner`.
  void publish(const stock_level& level, uint64_t owner, int64_t epoch);

  /// Removes the pair if `owner` still owns it (a newer incarnation may have
  /// published since): its last level may be wrong.
  void withdraw(std::string_view warehouse, std::string_view sku, uint64_t owner);

  /// The pair's durable level, if known and answerable here.
  std::optional<stock_level> find(std::string_view warehouse, std::string_view sku) const;

  /// Sets the SKU's pairs (its warehouses, in order), by SKU actor
  /// incarnation `owner` under lease `epoch`: what makes the SKU-wide read
  /// answerable here.
  void publish_sku(std::string_view sku, const std::vector<std::string>& warehouses,
                   uint64_t owner, int64_t epoch);

  /// Removes the SKU's pairs if `owner` still owns them.
  void withdraw_sku(std::string_view sku, uint64_t owner);

  /// Every pair of the SKU with its durable level, if the SKU's pairs and
  /// each of their levels are known and answerable here (else ask the SKU).
  std::optional<protocols::sku_stock> find_sku(std::string_view sku) const;

  size_t size() const;

private:
  /// A level without its names (the key holds them).
  struct entry {
    int64_t on_hand = 0, reserved = 0, committed = 0, available = 0, low_stock_threshold = 0,
            version = 0, last_seq = 0;
    int64_t epoch = 0;
    uint64_t owner = 0;
  };
  struct hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  /// A SKU's warehouses, each followed by '\x1f'.
  struct sku_entry {
    std::pmr::string warehouses;
    int64_t epoch = 0;
    uint64_t owner = 0;
  };
  template <class T>
  using map = std::pmr::unordered_map<std::pmr::string, T, hash, std::equal_to<>>;
  /// A SKU and all its pairs live in one shard (a SKU-wide read takes one lock).
  struct shard {
    std::mutex mtx;
    std::pmr::unsynchronized_pool_resource pool; ///< used under mtx only
    map<entry> pairs{&pool};
    map<sku_entry> skus{&pool};
  };
  static constexpr size_t shard_count = 64;

  /// "warehouse\x1fsku" in a per-thread buffer (no allocation once warm).
  static std::string_view key(std::string_view warehouse, std::string_view sku);
  shard& shard_of(std::string_view sku) const;
  static stock_level level_of(std::string_view warehouse, std::string_view sku, const entry& e);
  /// The lease epoch whose levels are answered for `sku` now: -1 any (no
  /// leases), 0 none.
  int64_t answerable_epoch(std::string_view sku) const;

  mutable std::array<shard, shard_count> shards_;
  std::shared_ptr<const shard_table> leases_;
  std::shared_ptr<const std::atomic<bool>> unreachable_;
};

} // namespace emporium::cluster
