#pragma once

#include "protocols/inventory.hpp"
#include "protocols/orders.hpp"

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace emporium::cluster {

using protocols::order_view;
using protocols::sku_stock;
using protocols::stock_level;

/// Where durable changes meet this node's WebSocket subscribers.
///
/// Publishers are actors: a pair after each durable write (stock_changed), an
/// order after each durable event (order_changed). When nobody subscribed to
/// the key that costs one shard lock and a hash probe. Otherwise the change is
/// merged into the key's state (newest version wins) and, unless a delivery is
/// already scheduled, one delivery is handed to the runner (the gateway's I/O
/// threads): a burst of changes becomes one frame, rendered once, offered to
/// every subscriber. Subscribers keep only the latest frame per key, so a slow
/// one never holds anything up.
///
/// Stock frames: {"type":"stock","sku","available","warehouses":[{"warehouse",
/// "on_hand","reserved","available"}],"version"} where version is the sum of the
/// pairs' versions (it grows with every change). Order frames: {"type":"order",
/// "order_id","status","payment_status","version"}.
class live_feed {
public:
  /// One connection's end. offer() is called from any thread and must not block.
  class subscriber {
  public:
    virtual ~subscriber() = default;
    virtual void offer(const std::string& key, std::shared_ptr<const std::string> frame) = 0;
  };
  using runner = std::function<void(std::function<void()>)>;

  /// Sets where deliveries run. Called once, before the first subscription.
  void attach(runner run) { run_ = std::move(run); }

  /// Adds `sub` to a topic. True when the feed does not know the key's state
  /// yet: the caller then asks the actor and calls seed_*; until then nothing
  /// is delivered. Otherwise `sub` is offered the current frame at once.
  bool subscribe_stock(const std::string& sku, const std::shared_ptr<subscriber>& sub);
  bool subscribe_order(const std::string& order_id, const std::shared_ptr<subscriber>& sub);
  void unsubscribe_stock(const std::string& sku, const subscriber* sub);
  void unsubscribe_order(const std::string& order_id, const subscriber* sub);

  /// The state as an actor answered it; delivered to every subscriber.
  void seed_stock(const sku_stock& s);
  void seed_order(const order_view& o);

  /// Publishers (actor threads). A change made here is also handed to the
  /// fan-out (set by a cluster node: to the other nodes' feeds); one that
  /// came from another node (`local` false) is not.
  void stock_changed(const stock_level& pair, bool local = true);
  void order_changed(const order_view& o, bool local = true);

  /// Where this node's changes go besides its own subscribers. Called once,
  /// before the first publisher runs.
  struct fanout {
    std::function<void(const stock_level&)> stock;
    std::function<void(const order_view&)> order;
  };
  void set_fanout(fanout f) { fanout_ = std::move(f); }

  /// Keys with at least one subscriber (for tests and metrics).
  size_t watched() const;

  static std::string stock_key(std::string_view sku) { return "stock:" + std::string{sku}; }
  static std::string order_key(std::string_view id) { return "order:" + std::string{id}; }

private:
  struct entry {
    std::vector<std::pair<const subscriber*, std::weak_ptr<subscriber>>> subs;
    bool seeded = false;
    bool scheduled = false;
    std::map<std::string, stock_level> levels; ///< stock: by warehouse
    order_view order;                          ///< order: status, payment_status, version
  };
  struct hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  struct shard {
    mutable std::mutex mtx;
    std::unordered_map<std::string, entry, hash, std::equal_to<>> entries;
  };
  static constexpr size_t shard_count = 32;
  fanout fanout_;
  using table = std::array<shard, shard_count>;

  static shard& shard_of(table& t, std::string_view id);
  bool subscribe(table& t, bool stock, const std::string& id, const std::shared_ptr<subscriber>& sub);
  void unsubscribe(table& t, const std::string& id, const subscriber* sub);
  /// Under the shard lock: marks a delivery due; true if the caller must schedule it.
  static bool due(entry& e);
  /// Applies `merge` to the key's entry if someone watches it (a seed also
  /// marks it known) and schedules a delivery when that changed anything.
  template <class Merge>
  void update(bool stock, std::string_view id, bool seed, Merge merge);
  void schedule(bool stock, std::string id);
  void deliver(bool stock, const std::string& id);
  static std::string render(bool stock, const std::string& id, const entry& e);

  runner run_;
  table stock_;
  table orders_;
};

} // namespace emporium::cluster
