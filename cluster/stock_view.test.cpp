#include "cluster/stock_view.hpp"

#include "cluster/shard_table.hpp"
#include "protocols/entity.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::cluster;

TEST_CASE("a pair whose lease lapsed is answered from the view only while the database is unreachable") {
  auto table = std::make_shared<shard_table>(16);
  auto unreachable = std::make_shared<std::atomic<bool>>(false);
  stock_view view{table, unreachable};
  auto level = std::make_shared<protocols::stock_level>();
  level->sku = "S1";
  level->warehouse = "w1";
  level->on_hand = 7;
  view.publish(level, 1);
  auto shard = table->shard_of(protocols::entity_kind::sku, "S1");
  table->hold(shard, 1, shard_table::clock::now() + std::chrono::hours{1});
  REQUIRE(view.find("w1", "S1"));
  table->drop(shard); // lapsed: another node may own it now
  CHECK_FALSE(view.find("w1", "S1"));
  unreachable->store(true); // PostgreSQL down from here: the last durable level
  REQUIRE(view.find("w1", "S1"));
  CHECK(view.find("w1", "S1")->on_hand == 7);
}
