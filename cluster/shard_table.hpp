#pragma once

#include "protocols/cluster.hpp"
#include "protocols/entity.hpp"

#include <caf/actor.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace emporium::cluster {

/// What this node knows about shards, shared by the coordinator (the only
/// writer), the router's shard actors and the gateway (readers):
/// - its own leases: per shard the epoch and until when the lease is surely
///   still valid (atomics: a request checks its shard without a lock);
/// - the routes to the others (a snapshot swapped under a mutex when
///   membership or leases change; shard actors copy it when told);
/// - the last membership round, for the ops routes and readiness.
class shard_table {
public:
  using clock = std::chrono::steady_clock;

  struct routes {
    std::vector<int32_t> owner;     ///< per shard: index into nodes/peers, -1 unknown or self
    std::vector<std::string> nodes; ///< node ids
    std::vector<caf::actor> peers;  ///< their endpoints (may be null: not connected)
  };

  struct snapshot {
    std::string self;
    std::string status; ///< this node's: joining | up | draining | left
    protocols::cluster_state state;
  };

  explicit shard_table(uint32_t shards);

  uint32_t shards() const noexcept { return shards_; }
  uint32_t shard_of(const protocols::entity_key& key) const noexcept;
  uint32_t shard_of(protocols::entity_kind kind, std::string_view id) const noexcept;

  /// Local leases. `valid_until` is when the lease surely still holds on
  /// PostgreSQL's side (the renewal was sent before it was granted).
  void hold(uint32_t shard, int64_t epoch, clock::time_point valid_until) noexcept;
  void drop(uint32_t shard) noexcept;
  bool owned(uint32_t shard, clock::time_point now = clock::now()) const noexcept;
  int64_t epoch(uint32_t shard) const noexcept; ///< 0 unless held
  /// The epoch of the last lease held, also after it lapsed by time; 0 once
  /// dropped (handed off or lost on a round).
  int64_t last_epoch(uint32_t shard) const noexcept;
  uint32_t owned_count(clock::time_point now = clock::now()) const noexcept;

  void set_routes(std::shared_ptr<const routes> r);
  std::shared_ptr<const routes> current_routes() const;

  void set_snapshot(snapshot s);
  snapshot current_snapshot() const;

  /// Up: joined and holding every shard assigned to it.
  std::atomic<bool> ready{false};

private:
  uint32_t shards_;
  std::unique_ptr<std::atomic<int64_t>[]> valid_until_ns_; ///< clock ticks; 0: not held
  std::unique_ptr<std::atomic<int64_t>[]> epochs_;
  mutable std::mutex mtx_; ///< routes and snapshot only: never on the request path
  std::shared_ptr<const routes> routes_;
  snapshot snapshot_;
};

} // namespace emporium::cluster
