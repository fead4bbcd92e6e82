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

stock_view::shard& stock_view::shard_of(std::string_view sku) const {
  return shards_[hash{}(sku) % shard_count];
}

stock_level stock_view::level_of(std::string_view warehouse, std::string_view sku, const entry& e) {
  return stock_level{std::string{sku}, std::string{warehouse}, e.on_hand, e.reserved, e.committed,
                     e.available, e.low_stock_threshold, e.version, e.last_seq};
}

stock_view::stock_view(std::shared_ptr<const shard_table> leases,
                       std::shared_ptr<const std::atomic<bool>> unreachable)
    : leases_(std::move(leases)), unreachable_(std::move(unreachable)) {
}

void stock_view::publish(const stock_level& l, uint64_t owner, int64_t epoch) {
  auto k = key(l.warehouse, l.sku);
  auto& s = shard_of(l.sku);
  entry e{l.on_hand, l.reserved, l.committed, l.available, l.low_stock_threshold,
          l.version, l.last_seq, epoch, owner};
  std::lock_guard guard{s.mtx};
  if (auto i = s.pairs.find(k); i != s.pairs.end())
    i->second = e;
  else
    s.pairs.emplace(std::pmr::string{k, &s.pool}, e);
}

void stock_view::withdraw(std::string_view warehouse, std::string_view sku, uint64_t owner) {
  auto k = key(warehouse, sku);
  auto& s = shard_of(sku);
  std::lock_guard guard{s.mtx};
  if (auto i = s.pairs.find(k); i != s.pairs.end() && i->second.owner == owner)
    s.pairs.erase(i);
}

int64_t stock_view::answerable_epoch(std::string_view sku) const {
  if (!leases_)
    return -1;
  auto shard = leases_->shard_of(entity_kind::sku, sku);
  if (auto held = leases_->epoch(shard))
    return held;
  if (unreachable_ && unreachable_->load(std::memory_order_relaxed))
    return leases_->last_epoch(shard); // 0 once dropped (handed off, or lost on a round)
  return 0;
}

std::optional<stock_level> stock_view::find(std::string_view warehouse, std::string_view sku) const {
  auto epoch = answerable_epoch(sku);
  if (epoch == 0) // a lease epoch is never 0
    return std::nullopt;
  auto k = key(warehouse, sku);
  auto& s = shard_of(sku);
  std::lock_guard guard{s.mtx};
  auto i = s.pairs.find(k);
  if (i == s.pairs.end() || (epoch > 0 && i->second.epoch != epoch))
    return std::nullopt;
  return level_of(warehouse, sku, i->second);
}

void stock_view::publish_sku(std::string_view sku, const std::vector<std::string>& warehouses,
                             uint64_t owner, int64_t epoch) {
  auto& s = shard_of(sku);
  std::lock_guard guard{s.mtx};
  auto i = s.skus.find(sku);
  if (i == s.skus.end())
    i = s.skus.emplace(std::pmr::string{sku, &s.pool}, sku_entry{std::pmr::string{&s.pool}}).first;
  auto& e = i->second;
  e.warehouses.clear();
  for (auto& w : warehouses) {
    e.warehouses += w;
    e.warehouses.push_back('\x1f');
  }
  e.epoch = epoch;
  e.owner = owner;
}

void stock_view::withdraw_sku(std::string_view sku, uint64_t owner) {
  auto& s = shard_of(sku);
  std::lock_guard guard{s.mtx};
  if (auto i = s.skus.find(sku); i != s.skus.end() && i->second.owner == owner)
    s.skus.erase(i);
}

std::optional<protocols::sku_stock> stock_view::find_sku(std::string_view sku) const {
  auto epoch = answerable_epoch(sku);
  if (epoch == 0)
    return std::nullopt;
  auto& s = shard_of(sku);
  std::lock_guard guard{s.mtx};
  auto i = s.skus.find(sku);
  if (i == s.skus.end() || i->second.warehouses.empty() || (epoch > 0 && i->second.epoch != epoch))
    return std::nullopt;
  protocols::sku_stock out;
  out.sku = sku;
  std::string_view rest = i->second.warehouses;
  while (!rest.empty()) {
    auto end = rest.find('\x1f');
    auto wh = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    auto p = s.pairs.find(key(wh, sku));
    if (p == s.pairs.end() || (epoch > 0 && p->second.epoch != epoch))
      return std::nullopt; // not (yet) known: the SKU answers
    out.available += p->second.available;
    out.warehouses.push_back(level_of(wh, sku, p->second));
  }
  return out;
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
