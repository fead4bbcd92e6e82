#include "cluster/stock_view.hpp"

#include "cluster/shard_table.hpp"
#include "protocols/entity.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::cluster;

namespace {

protocols::stock_level level_of(int64_t on_hand) {
  protocols::stock_level l;
  l.sku = "S1";
  l.warehouse = "w1";
  l.on_hand = l.available = on_hand;
  l.version = 3;
  return l;
}

constexpr auto hour = std::chrono::hours{1};

} // namespace

TEST_CASE("a level is answered with its names and numbers, only for its own pair") {
  stock_view view;
  view.publish(level_of(7), 1, 0);
  REQUIRE(view.find("w1", "S1"));
  CHECK(*view.find("w1", "S1") == level_of(7));
  CHECK_FALSE(view.find("w2", "S1"));
  CHECK_FALSE(view.find("S1", "w1"));
  view.publish(level_of(9), 2, 0);
  CHECK(view.find("w1", "S1")->on_hand == 9);
  view.withdraw("w1", "S1", 1); // not the owner any more
  CHECK(view.find("w1", "S1"));
  view.withdraw("w1", "S1", 2);
  CHECK_FALSE(view.find("w1", "S1"));
}

TEST_CASE("a level is answered only under the lease it was written under") {
  auto table = std::make_shared<shard_table>(16);
  stock_view view{table};
  auto shard = table->shard_of(protocols::entity_kind::sku, "S1");
  table->hold(shard, 3, shard_table::clock::now() + hour);
  view.publish(level_of(7), 1, 3);
  CHECK(view.find("w1", "S1"));
  table->drop(shard); // handed off: another node writes now
  CHECK_FALSE(view.find("w1", "S1"));
  table->hold(shard, 5, shard_table::clock::now() + hour); // ours again, a later tenure
  CHECK_FALSE(view.find("w1", "S1"));                    // the level of epoch 3 may be stale
  view.publish(level_of(8), 2, 5);
  REQUIRE(view.find("w1", "S1"));
  CHECK(view.find("w1", "S1")->on_hand == 8);
}

TEST_CASE("a pair whose lease lapsed is answered from the view only while the database is unreachable") {
  auto table = std::make_shared<shard_table>(16);
  auto unreachable = std::make_shared<std::atomic<bool>>(false);
  stock_view view{table, unreachable};
  auto shard = table->shard_of(protocols::entity_kind::sku, "S1");
  table->hold(shard, 1, shard_table::clock::now() + hour);
  view.publish(level_of(7), 1, 1);
  REQUIRE(view.find("w1", "S1"));
  table->hold(shard, 1, shard_table::clock::now() - hour); // lapsed: no round renewed it
  CHECK_FALSE(view.find("w1", "S1"));
  unreachable->store(true); // PostgreSQL down from here: the last durable level
  REQUIRE(view.find("w1", "S1"));
  CHECK(view.find("w1", "S1")->on_hand == 7);
  table->drop(shard); // a round found it taken over: no longer ours to answer
  CHECK_FALSE(view.find("w1", "S1"));
}

TEST_CASE("the SKU-wide read is answered only when the SKU's list and every listed pair are known") {
  stock_view view;
  CHECK_FALSE(view.find_sku("S1"));
  auto w2 = level_of(5);
  w2.warehouse = "w2";
  view.publish(level_of(7), 1, 0);
  CHECK_FALSE(view.find_sku("S1")); // no list yet: the SKU answers
  view.publish_sku("S1", {"w1", "w2"}, 9, 0);
  CHECK_FALSE(view.find_sku("S1")); // w2 has not published
  view.publish(w2, 2, 0);
  auto all = view.find_sku("S1");
  REQUIRE(all);
  CHECK(all->sku == "S1");
  CHECK(all->available == 12);
  REQUIRE(all->warehouses.size() == 2);
  CHECK(all->warehouses[0] == level_of(7));
  CHECK(all->warehouses[1] == w2);
  view.withdraw("w2", "S1", 2); // a pair that failed
  CHECK_FALSE(view.find_sku("S1"));
  view.publish(w2, 3, 0);
  view.withdraw_sku("S1", 8); // not the owner
  CHECK(view.find_sku("S1"));
  view.withdraw_sku("S1", 9);
  CHECK_FALSE(view.find_sku("S1"));
}

TEST_CASE("the SKU-wide read follows the lease like the pair read") {
  auto table = std::make_shared<shard_table>(16);
  stock_view view{table};
  auto shard = table->shard_of(protocols::entity_kind::sku, "S1");
  table->hold(shard, 3, shard_table::clock::now() + hour);
  view.publish(level_of(7), 1, 3);
  view.publish_sku("S1", {"w1"}, 9, 3);
  CHECK(view.find_sku("S1"));
  table->hold(shard, 4, shard_table::clock::now() + hour);
  CHECK_FALSE(view.find_sku("S1"));
  view.publish_sku("S1", {"w1"}, 10, 4);
  CHECK_FALSE(view.find_sku("S1")); // the pair's level is of the earlier tenure
  view.publish(level_of(7), 2, 4);
  CHECK(view.find_sku("S1"));
}
