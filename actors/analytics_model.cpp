#include "actors/analytics_model.hpp"

#include <algorithm>
#include <set>

namespace emporium::actors {

bool analytics_model::fresh(const std::string& aggregate, int64_t version) {
  auto& last = versions_[aggregate];
  if (version <= last)
    return false;
  last = version;
  return true;
}

void analytics_model::viewed(const std::string& sku, int64_t t_s) {
  skus_[sku].add(t_s, views, 1);
  totals_.add(t_s, total_views, 1);
}

void analytics_model::cart_add(const std::string& cart_id, const std::string& sku,
                               int64_t quantity, int64_t t_s) {
  skus_[sku].add(t_s, cart_adds, quantity);
  totals_.add(t_s, total_cart_adds, 1);
  auto& last = cart_last_add_[cart_id];
  last = std::max(last, t_s);
}

void analytics_model::checkout(int64_t t_s) {
  totals_.add(t_s, total_checkouts, 1);
}

void analytics_model::paid(const std::vector<std::pair<std::string, int64_t>>& lines,
                           int64_t t_s) {
  totals_.add(t_s, total_paid, 1);
  std::set<std::string> distinct;
  for (auto& [sku, units] : lines) {
    skus_[sku].add(t_s, units_sold, units);
    distinct.insert(sku);
  }
  for (auto& a : distinct)
    for (auto& b : distinct)
      if (a != b)
        ++bought_with_[a][b];
}

void analytics_model::pair_sold(const std::string& sku, const std::string& warehouse,
                                int64_t units, int64_t t_s) {
  pairs_[{sku, warehouse}].sold.add(t_s, 0, units);
}

void analytics_model::level(const std::string& sku, const std::string& warehouse,
                            int64_t available, int64_t low_stock_threshold) {
  auto& p = pairs_[{sku, warehouse}];
  p.available = available;
  p.threshold = low_stock_threshold;
}

std::vector<trending_item> analytics_model::trending(int64_t now_s, int64_t window_s,
                                                     size_t limit) {
  std::vector<trending_item> all;
  for (auto it = skus_.begin(); it != skus_.end();) {
    auto v = it->second.sum(now_s, window_s);
    if (it->second.empty()) { // nothing left in 25 h: forget the SKU
      it = skus_.erase(it);
      continue;
    }
    if (v[units_sold] != 0 || v[views] != 0 || v[cart_adds] != 0)
      all.push_back({it->first, v[units_sold], v[views], v[cart_adds]});
    ++it;
  }
  auto before = [](const trending_item& a, const trending_item& b) {
    if (a.units_sold != b.units_sold)
      return a.units_sold > b.units_sold;
    if (a.views != b.views)
      return a.views > b.views;
    return a.sku < b.sku;
  };
  auto n = std::min(limit, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(), before);
  all.resize(n);
  return all;
}

funnel_figures analytics_model::funnel(int64_t now_s, int64_t window_s) {
  auto t = totals_.sum(now_s, window_s);
  funnel_figures f;
  f.views = t[total_views];
  f.cart_adds = t[total_cart_adds];
  f.checkouts = t[total_checkouts];
  f.paid_orders = t[total_paid];
  for (auto it = cart_last_add_.begin(); it != cart_last_add_.end();) {
    if (it->second <= now_s - windowed_counts<1>::max_window_s) { // past any window
      it = cart_last_add_.erase(it);
      continue;
    }
    if (it->second > now_s - window_s && it->second <= now_s)
      ++f.carts;
    ++it;
  }
  if (f.carts > 0) {
    f.conversion = static_cast<double>(f.paid_orders) / static_cast<double>(f.carts);
    f.cart_abandonment = 1.0 - static_cast<double>(f.checkouts) / static_cast<double>(f.carts);
  }
  return f;
}

std::vector<low_stock_item> analytics_model::low_stock(int64_t now_s) {
  std::vector<low_stock_item> out;
  for (auto& [key, p] : pairs_) {
    if (p.threshold <= 0 || p.available > p.threshold)
      continue;
    low_stock_item item{key.first, key.second, p.available, p.threshold, 0, std::nullopt};
    item.units_sold_per_day = static_cast<double>(p.sold.sum(now_s, 3600)[0]) * 24.0;
    if (item.units_sold_per_day > 0)
      item.days_of_cover = static_cast<double>(p.available) / item.units_sold_per_day;
    out.push_back(std::move(item));
  }
  return out; // by (sku, warehouse): the map's order
}

std::vector<recommendation> analytics_model::recommendations(const std::string& sku,
                                                             size_t limit) const {
  std::vector<recommendation> out;
  if (auto it = bought_with_.find(sku); it != bought_with_.end())
    for (auto& [other, n] : it->second)
      out.push_back({other, n});
  auto before = [](const recommendation& a, const recommendation& b) {
    return a.score != b.score ? a.score > b.score : a.sku < b.sku;
  };
  auto n = std::min(limit, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n), out.end(), before);
  out.resize(n);
  return out;
}

} // namespace emporium::actors
