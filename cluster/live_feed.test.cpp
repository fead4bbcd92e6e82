#include "cluster/live_feed.hpp"

#include <doctest/doctest.h>

using namespace emporium::protocols;
using namespace emporium::cluster;

namespace {

struct recorder : live_feed::subscriber {
  std::vector<std::pair<std::string, std::string>> got;
  void offer(const std::string& key, std::shared_ptr<const std::string> frame) override {
    got.emplace_back(key, *frame);
  }
};

/// A feed whose deliveries wait in a list until the test runs them.
struct fixture {
  live_feed feed;
  std::vector<std::function<void()>> jobs;
  fixture() {
    feed.attach([this](std::function<void()> f) { jobs.push_back(std::move(f)); });
  }
  void run() {
    auto now = std::move(jobs);
    jobs.clear();
    for (auto& j : now)
      j();
  }
};

stock_level level(const char* wh, int64_t on_hand, int64_t reserved, int64_t version) {
  stock_level l;
  l.sku = "S1";
  l.warehouse = wh;
  l.on_hand = on_hand;
  l.reserved = reserved;
  l.available = on_hand - reserved;
  l.version = version;
  return l;
}

} // namespace

TEST_CASE("nobody subscribed: a change schedules nothing") {
  fixture f;
  f.feed.stock_changed(level("w1", 5, 0, 1));
  CHECK(f.jobs.empty());
  CHECK(f.feed.watched() == 0);
}

TEST_CASE("a stock subscription is seeded, then every change reaches every subscriber once") {
  fixture f;
  auto a = std::make_shared<recorder>();
  auto b = std::make_shared<recorder>();
  CHECK(f.feed.subscribe_stock("S1", a)); // unknown: the caller seeds it
  f.feed.stock_changed(level("w2", 3, 0, 4)); // before the seed: kept, not sent
  CHECK(f.jobs.empty());
  f.feed.seed_stock(sku_stock{"S1", 7, {level("w1", 7, 0, 2), level("w2", 1, 0, 3)}});
  f.run();
  REQUIRE(a->got.size() == 1);
  CHECK(a->got[0].first == "stock:S1");
  CHECK(a->got[0].second
        == R"({"type":"stock","sku":"S1","available":10,"warehouses":[)"
           R"({"warehouse":"w1","on_hand":7,"reserved":0,"available":7},)"
           R"({"warehouse":"w2","on_hand":3,"reserved":0,"available":3}],"version":6})");
  CHECK_FALSE(f.feed.subscribe_stock("S1", b)); // known: b gets the current frame at once
  CHECK(b->got.size() == 1);
  f.feed.stock_changed(level("w1", 7, 2, 3));
  f.run();
  CHECK(a->got.size() == 2);
  CHECK(b->got.size() == 2);
  CHECK(b->got.back().second.find(R"("available":8)") != std::string::npos);
}

TEST_CASE("a burst of changes before the delivery runs becomes one frame with the latest state") {
  fixture f;
  auto a = std::make_shared<recorder>();
  f.feed.subscribe_stock("S1", a);
  f.feed.seed_stock(sku_stock{"S1", 0, {}});
  f.run();
  for (int v = 1; v <= 50; ++v)
    f.feed.stock_changed(level("w1", 100, v, v));
  CHECK(f.jobs.size() == 1);
  f.feed.stock_changed(level("w1", 100, 7, 7)); // older than what it holds: ignored
  f.run();
  REQUIRE(a->got.size() == 2);
  CHECK(a->got.back().second.find(R"("reserved":50)") != std::string::npos);
}

TEST_CASE("the last unsubscribe forgets the key; a dead subscriber is skipped") {
  fixture f;
  auto a = std::make_shared<recorder>();
  auto b = std::make_shared<recorder>();
  f.feed.subscribe_order("o1", a);
  f.feed.subscribe_order("o1", b);
  order_view o;
  o.order_id = "o1";
  o.status = "pending";
  o.payment_status = "queued";
  o.version = 2;
  f.feed.seed_order(o);
  f.run();
  CHECK(a->got.back().second
        == R"({"type":"order","order_id":"o1","status":"pending","payment_status":"queued","version":2})");
  b.reset(); // the connection is gone without unsubscribing
  o.status = "cancelled";
  o.version = 3;
  f.feed.order_changed(o);
  f.run();
  CHECK(a->got.size() == 2);
  f.feed.unsubscribe_order("o1", a.get());
  CHECK(f.feed.watched() == 0);
  f.feed.order_changed(o);
  CHECK(f.jobs.empty());
}
