#pragma once

#include "actors/analytics_window.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace emporium::actors {

/// One row of the trending ranking.
struct trending_item {
  std::string sku;
  int64_t units_sold = 0;
  int64_t views = 0;
  int64_t cart_adds = 0;
  bool operator==(const trending_item&) const = default;
};

/// The funnel of one window (the contract's formulas).
struct funnel_figures {
  int64_t views = 0;
  int64_t carts = 0; ///< distinct carts with an add in the window
  int64_t cart_adds = 0;
  int64_t checkouts = 0;
  int64_t paid_orders = 0;
  double conversion = 0;       ///< paid_orders / carts, 0 without carts
  double cart_abandonment = 0; ///< 1 - checkouts / carts, 0 without carts
};

/// A pair at or below its threshold, with its days of cover.
struct low_stock_item {
  std::string sku;
  std::string warehouse;
  int64_t available = 0;
  int64_t low_stock_threshold = 0;
  double units_sold_per_day = 0;        ///< the last hour's sales, scaled to a day
  std::optional<double> days_of_cover;  ///< available / units_sold_per_day; none without sales
};

/// A SKU bought with another, `score` paid orders holding both.
struct recommendation {
  std::string sku;
  int64_t score = 0;
  bool operator==(const recommendation&) const = default;
};

/// What the analytics actors know, fed with the domain events in any order
/// across aggregates and at least once (an event is applied once: the
/// caller passes each aggregate's event version, and a version at or below
/// the last applied one is skipped). Pure data and time in seconds: the
/// actor around it owns the clock, the consumers and the snapshots.
class analytics_model {
public:
  /// Whether (aggregate, version) is new; records it. Versions of one
  /// aggregate arrive in order (one Kafka key, one partition).
  bool fresh(const std::string& aggregate, int64_t version);

  void viewed(const std::string& sku, int64_t t_s);
  void cart_add(const std::string& cart_id, const std::string& sku, int64_t quantity, int64_t t_s);
  void checkout(int64_t t_s);
  /// A paid order: `lines` are (sku, units).
  void paid(const std::vector<std::pair<std::string, int64_t>>& lines, int64_t t_s);
  /// Units of a pair that left stock for a customer (its sales rate).
  void pair_sold(const std::string& sku, const std::string& warehouse, int64_t units, int64_t t_s);
  /// A pair's level as of its latest event.
  void level(const std::string& sku, const std::string& warehouse, int64_t available,
             int64_t low_stock_threshold);

  /// By units sold, then views, then sku; SKUs with anything in the window.
  std::vector<trending_item> trending(int64_t now_s, int64_t window_s, size_t limit);
  funnel_figures funnel(int64_t now_s, int64_t window_s);
  std::vector<low_stock_item> low_stock(int64_t now_s);
  /// By score, then sku; not `sku` itself.
  std::vector<recommendation> recommendations(const std::string& sku, size_t limit) const;

  size_t skus_tracked() const noexcept { return skus_.size(); }

private:
  enum sku_field : size_t { units_sold, views, cart_adds };
  enum total_field : size_t { total_views, total_cart_adds, total_checkouts, total_paid };
  struct pair_state {
    int64_t available = 0;
    int64_t threshold = 0;
    windowed_counts<1> sold;
  };

  std::unordered_map<std::string, int64_t> versions_;          ///< by aggregate
  std::unordered_map<std::string, windowed_counts<3>> skus_;   ///< by sku
  windowed_counts<4> totals_;
  std::unordered_map<std::string, int64_t> cart_last_add_;    ///< by cart: time of its latest add
  std::map<std::pair<std::string, std::string>, pair_state> pairs_; ///< by (sku, warehouse)
  std::unordered_map<std::string, std::unordered_map<std::string, int64_t>> bought_with_;
};

} // namespace emporium::actors
