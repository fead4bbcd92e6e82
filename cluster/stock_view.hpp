#pragma once

#include "protocols/inventory.hpp"

#include <atomic>
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace emporium::cluster {

class shard_table;

using protocols::stock_level;

/// The read model of this node's live stock pairs: each stock actor publishes
/// its *durable* level here whenever it changes (before it answers the
/// requests of that write) and withdraws it when it stops. The gateway answers
/// pair reads from it on the I/O thread without a message round trip; a pair
/// not here (not started, passivated, or hosted elsewhere) is asked through
/// the router as before.
///
/// 64 shards, each a mutex over a hash map of shared immutable levels: a
/// lookup holds one shard's lock for a hash probe and a reference-count
/// increment; there is no lock shared by all requests.
class stock_view {
public:
  using level_ptr = std::shared_ptr<const stock_level>;

  stock_view() = default;

  /// A view that answers only pairs whose SKU's shard this node holds a lease
  /// on now (a node of a cluster): after a lease lapsed, a read goes to the
  /// new owner instead of the last level seen here.
  /// While `unreachable` is set (this node cannot reach PostgreSQL, so its
  /// leases lapse), a pair is still answered from here with the last durable
  /// level this node saw: reads keep answering through a database outage
  /// (stale only if another node, still reaching the database, took the
  /// shard over and wrote meanwhile).
  explicit stock_view(std::shared_ptr<const shard_table> leases,
                      std::shared_ptr<const std::atomic<bool>> unreachable = nullptr);

  /// Sets the pair's level; `owner` names the publishing actor incarnation.
  void publish(level_ptr level, uint64_t owner);

  /// Removes the pair if `owner` still owns it (a newer incarnation may have
  /// published since).
  void withdraw(std::string_view warehouse, std::string_view sku, uint64_t owner);

  /// The pair's durable level, or null.
  level_ptr find(std::string_view warehouse, std::string_view sku) const;

  size_t size() const;

private:
  struct entry {
    level_ptr level;
    uint64_t owner = 0;
  };
  struct hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct shard {
    std::mutex mtx;
    std::unordered_map<std::string, entry, hash, std::equal_to<>> pairs;
  };
  static constexpr size_t shard_count = 64;

  /// "warehouse\x1fsku" in a per-thread buffer (no allocation once warm).
  static std::string_view key(std::string_view warehouse, std::string_view sku);
  shard& shard_of(std::string_view key) const;

  mutable std::array<shard, shard_count> shards_;
  std::shared_ptr<const shard_table> leases_;
  std::shared_ptr<const std::atomic<bool>> unreachable_;
};

} // namespace emporium::cluster
