#include "cluster/live_feed.hpp"

#include "protocols/envelope.hpp"

namespace emporium::cluster {

using namespace protocols;

live_feed::shard& live_feed::shard_of(table& t, std::string_view id) {
  return t[std::hash<std::string_view>{}(id) % shard_count];
}

bool live_feed::subscribe(table& t, bool stock, const std::string& id,
                          const std::shared_ptr<subscriber>& sub) {
  auto& sh = shard_of(t, id);
  std::string frame;
  {
    std::lock_guard guard{sh.mtx};
    auto& e = sh.entries[id];
    for (auto& [raw, weak] : e.subs)
      if (raw == sub.get())
        return !e.seeded;
    e.subs.emplace_back(sub.get(), sub);
    if (!e.seeded)
      return true;
    frame = render(stock, id, e);
  }
  sub->offer(stock ? stock_key(id) : order_key(id),
             std::make_shared<const std::string>(std::move(frame)));
  return false;
}

void live_feed::unsubscribe(table& t, const std::string& id, const subscriber* sub) {
  auto& sh = shard_of(t, id);
  std::lock_guard guard{sh.mtx};
  auto i = sh.entries.find(id);
  if (i == sh.entries.end())
    return;
  std::erase_if(i->second.subs, [sub](auto& s) { return s.first == sub || s.second.expired(); });
  if (i->second.subs.empty())
    sh.entries.erase(i); // nobody watches: its state would go stale
}

bool live_feed::subscribe_stock(const std::string& sku, const std::shared_ptr<subscriber>& sub) {
  return subscribe(stock_, true, sku, sub);
}

bool live_feed::subscribe_order(const std::string& id, const std::shared_ptr<subscriber>& sub) {
  return subscribe(orders_, false, id, sub);
}

void live_feed::unsubscribe_stock(const std::string& sku, const subscriber* sub) {
  unsubscribe(stock_, sku, sub);
}

void live_feed::unsubscribe_order(const std::string& id, const subscriber* sub) {
  unsubscribe(orders_, id, sub);
}

bool live_feed::due(entry& e) {
  if (!e.seeded || e.scheduled)
    return false;
  e.scheduled = true;
  return true;
}

void live_feed::schedule(bool stock, std::string id) {
  if (run_)
    run_([this, stock, id = std::move(id)] { deliver(stock, id); });
}

namespace {

/// Keeps `l` if it is newer than what the map holds for its warehouse.
bool merge(std::map<std::string, stock_level>& levels, const stock_level& l) {
  auto [i, fresh] = levels.try_emplace(l.warehouse, l);
  if (!fresh && i->second.version >= l.version)
    return false;
  i->second = l;
  return true;
}

/// Keeps `o`'s status if it is newer.
bool merge(order_view& into, const order_view& o) {
  if (into.version >= o.version && !into.order_id.empty())
    return false;
  into.order_id = o.order_id;
  into.status = o.status;
  into.payment_status = o.payment_status;
  into.version = o.version;
  return true;
}

} // namespace

template <class Merge>
void live_feed::update(bool stock, std::string_view id, bool seed, Merge merge) {
  auto& sh = shard_of(stock ? stock_ : orders_, id);
  bool go = false;
  {
    std::lock_guard guard{sh.mtx};
    auto i = sh.entries.find(id);
    if (i == sh.entries.end())
      return; // nobody subscribed (or everyone left meanwhile)
    bool changed = merge(i->second);
    if (seed)
      i->second.seeded = true;
    go = (changed || seed) && due(i->second);
  }
  if (go)
    schedule(stock, std::string{id});
}

void live_feed::seed_stock(const sku_stock& s) {
  update(true, s.sku, true, [&s](entry& e) {
    for (auto& l : s.warehouses)
      merge(e.levels, l);
    return true;
  });
}

void live_feed::seed_order(const order_view& o) {
  update(false, o.order_id, true, [&o](entry& e) { return merge(e.order, o); });
}

void live_feed::stock_changed(const stock_level& pair, bool local) {
  if (pair.version == 0)
    return; // a pair that has no durable state yet shows nothing new
  if (local && fanout_.stock)
    fanout_.stock(pair);
  update(true, pair.sku, false, [&pair](entry& e) { return merge(e.levels, pair); });
}

void live_feed::order_changed(const order_view& o, bool local) {
  if (local && fanout_.order)
    fanout_.order(o);
  update(false, o.order_id, false, [&o](entry& e) { return merge(e.order, o); });
}

void live_feed::deliver(bool stock, const std::string& id) {
  auto& sh = shard_of(stock ? stock_ : orders_, id);
  std::vector<std::shared_ptr<subscriber>> subs;
  std::string frame;
  {
    std::lock_guard guard{sh.mtx};
    auto i = sh.entries.find(id);
    if (i == sh.entries.end())
      return;
    auto& e = i->second;
    e.scheduled = false;
    frame = render(stock, id, e);
    subs.reserve(e.subs.size());
    for (auto& [raw, weak] : e.subs)
      if (auto s = weak.lock())
        subs.push_back(std::move(s));
  }
  auto shared = std::make_shared<const std::string>(std::move(frame));
  auto key = stock ? stock_key(id) : order_key(id);
  for (auto& s : subs)
    s->offer(key, shared);
}

std::string live_feed::render(bool stock, const std::string& id, const entry& e) {
  std::string out;
  if (stock) {
    int64_t available = 0;
    int64_t version = 0;
    std::string whs;
    for (auto& [wh, l] : e.levels) {
      available += l.available;
      version += l.version;
      whs += whs.empty() ? "{\"warehouse\":" : ",{\"warehouse\":";
      append_json_string(whs, wh);
      whs += ",\"on_hand\":" + std::to_string(l.on_hand) + ",\"reserved\":"
             + std::to_string(l.reserved) + ",\"available\":" + std::to_string(l.available) + "}";
    }
    out = "{\"type\":\"stock\",\"sku\":";
    append_json_string(out, id);
    out += ",\"available\":" + std::to_string(available) + ",\"warehouses\":[" + whs
           + "],\"version\":" + std::to_string(version) + "}";
  } else {
    out = "{\"type\":\"order\",\"order_id\":";
    append_json_string(out, id);
    out += ",\"status\":";
    append_json_string(out, e.order.status);
    out += ",\"payment_status\":";
    append_json_string(out, e.order.payment_status);
    out += ",\"version\":" + std::to_string(e.order.version) + "}";
  }
  return out;
}

size_t live_feed::watched() const {
  size_t n = 0;
  for (auto* t : {&stock_, &orders_})
    for (auto& sh : *t) {
      std::lock_guard guard{sh.mtx};
      n += sh.entries.size();
    }
  return n;
}

} // namespace emporium::cluster
