#include "actors/analytics_model.hpp"

#include <doctest/doctest.h>

using namespace emporium::actors;

namespace {
constexpr int64_t t0 = 1'800'000'000;
}

TEST_CASE("trending ranks by units sold, then views, then sku, within the window") {
  analytics_model m;
  m.viewed("B", t0);
  m.viewed("B", t0);
  m.viewed("A", t0);
  m.viewed("C", t0);
  m.cart_add("c1", "D", 2, t0);
  m.paid({{"E", 1}}, t0 - 600); // outside a 5 min window
  m.paid({{"C", 1}}, t0);
  auto top = m.trending(t0, 300, 10);
  REQUIRE(top.size() == 4);
  CHECK(top[0] == trending_item{"C", 1, 1, 0});
  CHECK(top[1] == trending_item{"B", 0, 2, 0});
  CHECK(top[2] == trending_item{"A", 0, 1, 0}); // A before D: more views
  CHECK(top[3] == trending_item{"D", 0, 0, 2});
  CHECK(m.trending(t0, 300, 2).size() == 2);
  CHECK(m.trending(t0, 3600, 10)[1].sku == "E");
  m.viewed("Z", t0);
  m.viewed("Y", t0);
  auto ties = m.trending(t0, 1, 10); // A, B, C, Y, Z viewed now; B twice
  CHECK(ties[0].sku == "C");
  CHECK(ties[1].sku == "B");
  CHECK(ties[2].sku == "A");
  CHECK(ties[3].sku == "Y");
  CHECK(ties[4].sku == "Z");
}

TEST_CASE("the funnel follows the contract's formulas") {
  analytics_model m;
  CHECK(m.funnel(t0, 3600).conversion == 0); // no carts: both 0
  CHECK(m.funnel(t0, 3600).cart_abandonment == 0);
  for (int i = 0; i < 10; ++i)
    m.viewed("A", t0);
  m.cart_add("c1", "A", 1, t0);
  m.cart_add("c1", "B", 1, t0); // the same cart: one cart, two adds
  m.cart_add("c2", "A", 1, t0);
  m.cart_add("c3", "A", 1, t0);
  m.cart_add("c4", "A", 1, t0);
  m.checkout(t0); // c1
  m.checkout(t0); // c2, declined later
  m.paid({{"A", 1}, {"B", 1}}, t0);
  auto f = m.funnel(t0, 3600);
  CHECK(f.views == 10);
  CHECK(f.carts == 4);
  CHECK(f.cart_adds == 5);
  CHECK(f.checkouts == 2);
  CHECK(f.paid_orders == 1);
  CHECK(f.conversion == doctest::Approx(0.25));
  CHECK(f.cart_abandonment == doctest::Approx(0.5));
  CHECK(m.funnel(t0 + 3600, 3600).carts == 0); // out of the window
}

TEST_CASE("co-purchases count paid orders holding both SKUs, ranked by score then sku") {
  analytics_model m;
  m.paid({{"A", 1}, {"B", 2}, {"C", 1}}, t0);
  m.paid({{"A", 1}, {"C", 1}}, t0);
  m.paid({{"A", 3}, {"A", 1}, {"D", 1}}, t0); // A twice in one order: one order
  m.paid({{"B", 1}}, t0);
  auto r = m.recommendations("A", 5);
  REQUIRE(r.size() == 3);
  CHECK(r[0] == recommendation{"C", 2});
  CHECK(r[1] == recommendation{"B", 1});
  CHECK(r[2] == recommendation{"D", 1});
  CHECK(m.recommendations("A", 1).size() == 1);
  CHECK(m.recommendations("Q", 5).empty());
  CHECK(m.recommendations("B", 5) == std::vector<recommendation>{{"A", 1}, {"C", 1}});
}

TEST_CASE("low stock: pairs at or under a positive threshold, with days of cover from the last hour") {
  analytics_model m;
  m.level("A", "w1", 5, 10);
  m.level("A", "w2", 50, 10); // above its threshold
  m.level("B", "w1", 0, 0);   // no threshold
  m.level("C", "w1", 3, 3);
  m.pair_sold("A", "w1", 2, t0 - 7200); // before the last hour: not counted
  m.pair_sold("A", "w1", 1, t0 - 60);
  auto low = m.low_stock(t0);
  REQUIRE(low.size() == 2);
  CHECK(low[0].sku == "A");
  CHECK(low[0].units_sold_per_day == doctest::Approx(24));
  REQUIRE(low[0].days_of_cover);
  CHECK(*low[0].days_of_cover == doctest::Approx(5.0 / 24));
  CHECK(low[1].sku == "C");
  CHECK_FALSE(low[1].days_of_cover); // no sales: null
}

TEST_CASE("an event applied once: versions of an aggregate at or below the last are skipped") {
  analytics_model m;
  CHECK(m.fresh("ord_1", 1));
  CHECK(m.fresh("ord_1", 2));
  CHECK_FALSE(m.fresh("ord_1", 2));
  CHECK_FALSE(m.fresh("ord_1", 1));
  CHECK(m.fresh("ord_2", 1));
}
