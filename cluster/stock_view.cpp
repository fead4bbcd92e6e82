#include "cluster/stock_view.hpp"

#include "cluster/shard_table.hpp"

namespace emporium::cluster {

using namespace protocols;

std::string_view stock_view::key(std::string_view warehouse, std::string_view sku) {
  thread_local std::string buf;
  buf.assign(warehouse);
  buf.push_back('\x1f'); // outside the contract's id pattern: no two pairs share a key
  buf.append(sku);
  return buf;
}

stock_view::shard& stock_view::shard_of(std::string_view k) const {
  return shards_[hash{}(k) % shard_count];
}

void stock_view::publish(level_ptr level, uint64_t owner) {
  auto k = key(level->warehouse, level->sku);
  auto& s = shard_of(k);
  std::lock_guard guard{s.mtx};
  auto i = s.pairs.find(k);
  if (i == s.pairs.end())
    s.pairs.emplace(std::string{k}, entry{std::move(level), owner});
  else
    i->second = entry{std::move(level), owner};
}

void stock_view::withdraw(std::string_view warehouse, std::string_view sku, uint64_t owner) {
  auto k = key(warehouse, sku);
  auto& s = shard_of(k);
  std::lock_guard guard{s.mtx};
  if (auto i = s.pairs.find(k); i != s.pairs.end() && i->second.owner == owner)
    s.pairs.erase(i);
}

stock_view::stock_view(std::shared_ptr<const shard_table> leases,
                       std::shared_ptr<const std::atomic<bool>> unreachable)
    : leases_(std::move(leases)), unreachable_(std::move(unreachable)) {
}

stock_view::level_ptr stock_view::find(std::string_view warehouse, std::string_view sku) const {
  if (leases_ && !leases_->owned(leases_->shard_of(entity_kind::sku, sku))
      && !(unreachable_ && unreachable_->load(std::memory_order_relaxed)))
    return nullptr;
  auto k = key(warehouse, sku);
  auto& s = shard_of(k);
  std::lock_guard guard{s.mtx};
  auto i = s.pairs.find(k);
  return i == s.pairs.end() ? nullptr : i->second.level;
}

size_t stock_view::size() const {
  size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard guard{s.mtx};
    n += s.pairs.size();
  }
  return n;
}

} // namespace emporium::cluster
