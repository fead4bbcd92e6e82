#include "cluster/shard_table.hpp"

#include "cluster/assignment.hpp"

namespace emporium::cluster {

shard_table::shard_table(uint32_t shards)
  : shards_(shards),
    valid_until_ns_(new std::atomic<int64_t>[shards]),
    epochs_(new std::atomic<int64_t>[shards]),
    routes_(std::make_shared<routes>(routes{std::vector<int32_t>(shards, -1), {}, {}})) {
  for (uint32_t i = 0; i < shards; ++i) {
    valid_until_ns_[i].store(0, std::memory_order_relaxed);
    epochs_[i].store(0, std::memory_order_relaxed);
  }
}

uint32_t shard_table::shard_of(const protocols::entity_key& key) const noexcept {
  return cluster::shard_of(key, shards_);
}

uint32_t shard_table::shard_of(protocols::entity_kind kind, std::string_view id) const noexcept {
  return cluster::shard_of(kind, id, shards_);
}

void shard_table::hold(uint32_t shard, int64_t epoch, clock::time_point valid_until) noexcept {
  epochs_[shard].store(epoch, std::memory_order_relaxed);
  valid_until_ns_[shard].store(valid_until.time_since_epoch().count(), std::memory_order_release);
}

void shard_table::drop(uint32_t shard) noexcept {
  valid_until_ns_[shard].store(0, std::memory_order_release);
  epochs_[shard].store(0, std::memory_order_relaxed);
}

bool shard_table::owned(uint32_t shard, clock::time_point now) const noexcept {
  return valid_until_ns_[shard].load(std::memory_order_acquire) > now.time_since_epoch().count();
}

int64_t shard_table::epoch(uint32_t shard) const noexcept {
  return owned(shard) ? epochs_[shard].load(std::memory_order_relaxed) : 0;
}

int64_t shard_table::last_epoch(uint32_t shard) const noexcept {
  return epochs_[shard].load(std::memory_order_relaxed);
}

uint32_t shard_table::owned_count(clock::time_point now) const noexcept {
  uint32_t n = 0;
  for (uint32_t s = 0; s < shards_; ++s)
    n += owned(s, now) ? 1 : 0;
  return n;
}

void shard_table::set_routes(std::shared_ptr<const routes> r) {
  std::lock_guard guard{mtx_};
  routes_ = std::move(r);
}

std::shared_ptr<const shard_table::routes> shard_table::current_routes() const {
  std::lock_guard guard{mtx_};
  return routes_;
}

void shard_table::set_snapshot(snapshot s) {
  std::lock_guard guard{mtx_};
  snapshot_ = std::move(s);
}

shard_table::snapshot shard_table::current_snapshot() const {
  std::lock_guard guard{mtx_};
  return snapshot_;
}

} // namespace emporium::cluster
