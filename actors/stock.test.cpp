#include "actors/stock.hpp"

#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace emporium::cluster;
using namespace std::chrono_literals;

namespace {

struct stock_fixture : test::with_store_double {
  stock_actor spawn_pair(pair_snapshot snap = {}, actors::stock_config cfg = {}) {
    if (snap.level.sku.empty()) {
      snap.level.sku = "S1";
      snap.level.warehouse = "w1";
    }
    auto p = actors::spawn_stock(sys, std::move(snap), store, std::move(cfg));
    run();
    return p;
  }

  int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
  }

  /// Sends a command, lets the actor write, completes the write, returns the reply.
  template <class Cmd>
  caf::expected<stock_result> durable(stock_actor& p, Cmd cmd) {
    auto pending = send_request(p, std::move(cmd));
    run();
    complete_all_writes();
    return receive<stock_result>(pending);
  }

  stock_level level(stock_actor& p) { return *ask<stock_level>(p, get_stock_level{}); }

  /// Sends a reserve (expiring in a minute) and runs until its batch is written.
  auto reserve_in_flight(stock_actor& p, std::string id, int64_t qty) {
    auto pending = send_request(p, reserve_stock{std::move(id), qty, now_ms() + 60000, ""});
    run();
    return pending;
  }

  caf::expected<stock_result> reserve(stock_actor& p, std::string id, int64_t qty,
                                      std::chrono::seconds ttl = 900s) {
    return durable(p, reserve_stock{std::move(id), qty, now_ms() + ttl.count() * 1000, "u1"});
  }
};

} // namespace

TEST_CASE_FIXTURE(stock_fixture, "a push sets on_hand once it is durable and ignores older seqs") {
  auto p = spawn_pair();
  auto r = durable(p, push_stock_level{120, 17, true, 10, "wh"});
  REQUIRE(r);
  CHECK(r->applied);
  CHECK(r->level.on_hand == 120);
  CHECK(r->level.available == 120);
  CHECK(r->level.low_stock_threshold == 10);
  CHECK(r->level.version == 1);
  REQUIRE(ctl->batches.size() == 1);
  CHECK(ctl->batches[0].events.at(0).event_type == "stock_level_pushed");
  CHECK(ctl->batches[0].events.at(0).aggregate_id == "S1@w1");
  CHECK(ctl->batches[0].expected_version == 0);
  auto older = durable(p, push_stock_level{5, 17, false, 0, "wh"});
  REQUIRE(older);
  CHECK_FALSE(older->applied);
  CHECK(older->level.on_hand == 120);
  CHECK(ctl->batches.size() == 1); // nothing written for a stale push
}

TEST_CASE_FIXTURE(stock_fixture, "no reply is sent before the write is durable") {
  auto p = spawn_pair();
  auto pending = send_request(p, push_stock_level{10, 1, false, 0, ""});
  run();
  REQUIRE(ctl->waiting == 1);
  CHECK(self->mailbox().empty());
  complete_write(*this, store);
  auto r = receive<stock_result>(pending);
  REQUIRE(r);
  CHECK(r->level.on_hand == 10);
}

TEST_CASE_FIXTURE(stock_fixture, "a read shows durable state; the planner's view includes pending writes") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  auto pending = reserve_in_flight(p, "r", 4); // in flight, not durable
  CHECK(level(p).reserved == 0);
  CHECK(ask<stock_level>(p, get_stock_level{true})->reserved == 4);
  complete_write(*this, store);
  CHECK(receive<stock_result>(pending));
  CHECK(level(p).reserved == 4);
}

TEST_CASE_FIXTURE(stock_fixture, "adjust moves on_hand by delta and refuses to go negative") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  auto r = durable(p, adjust_stock{-3, "damaged", "u"});
  REQUIRE(r);
  CHECK(r->level.on_hand == 7);
  auto bad = durable(p, adjust_stock{-8, "oops", "u"});
  REQUIRE_FALSE(bad);
  CHECK(to_errc(bad.error()) == errc::conflict);
  CHECK(level(p).on_hand == 7);
}

TEST_CASE_FIXTURE(stock_fixture, "a reserve holds stock and a second one beyond availability is refused with available") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{5, 1, false, 0, ""}));
  auto r = reserve(p, "r1", 3);
  REQUIRE(r);
  CHECK(r->hold.status == "held");
  CHECK(r->level.reserved == 3);
  CHECK(r->level.available == 2);
  auto refused = reserve(p, "r2", 3);
  REQUIRE_FALSE(refused);
  CHECK(to_errc(refused.error()) == errc::insufficient_stock);
  CHECK(refused.error().context().get_as<int64_t>(0) == 2);
}

TEST_CASE_FIXTURE(stock_fixture, "release gives a hold back; commit makes it permanent and unreleasable") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{5, 1, false, 0, ""}));
  REQUIRE(reserve(p, "r1", 2));
  REQUIRE(reserve(p, "r2", 2));
  auto rel = durable(p, release_stock{"r1", ""});
  REQUIRE(rel);
  CHECK(rel->hold.status == "released");
  CHECK(rel->level.available == 3);
  auto com = durable(p, commit_stock{"r2", ""});
  REQUIRE(com);
  CHECK(com->level.committed == 2);
  CHECK(com->level.reserved == 2);
  auto again = durable(p, release_stock{"r2", ""});
  REQUIRE_FALSE(again);
  CHECK(to_errc(again.error()) == errc::invalid_state);
  auto unknown = durable(p, release_stock{"nope", ""});
  REQUIRE_FALSE(unknown);
  CHECK(to_errc(unknown.error()) == errc::not_found);
}

TEST_CASE_FIXTURE(stock_fixture, "a hold not committed is released at its expiry by the actor's own timer") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{5, 1, false, 0, ""}));
  REQUIRE(reserve(p, "r1", 2, 15s));
  REQUIRE(reserve(p, "r2", 1, 60s));
  REQUIRE(durable(p, commit_stock{"r2", ""}));
  CHECK(level(p).available == 2);
  advance_time(14s);
  CHECK(level(p).available == 2);
  advance_time(2s);
  REQUIRE(ctl->waiting == 1); // the expiry is written like any change
  complete_write(*this, store);
  CHECK(level(p).available == 4);
  CHECK(ctl->batches.back().events.at(0).event_type == "reservation_expired");
  advance_time(120s); // committed holds never expire
  CHECK(level(p).available == 4);
}

TEST_CASE_FIXTURE(stock_fixture, "an expiry whose write failed is tried again, and the pair may passivate after") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{5, 1, false, 0, ""}));
  REQUIRE(reserve(p, "r1", 2, 15s));
  advance_time(16s);
  REQUIRE(ctl->waiting == 1);
  complete_write(*this, store, caf::make_error(errc::unavailable));
  CHECK(level(p).reserved == 2); // the write failed: the hold is live again
  CHECK_FALSE(*ask<bool>(p, passivate_atom_v));
  advance_time(500ms);
  CHECK(ctl->waiting == 0); // not at once: an outage must not become a write loop
  advance_time(600ms);
  REQUIRE(ctl->waiting == 1); // the timer was armed again
  CHECK(ctl->batches.back().events.at(0).event_type == "reservation_expired");
  complete_write(*this, store);
  CHECK(level(p).reserved == 0);
  CHECK(*ask<bool>(p, passivate_atom_v));
}

TEST_CASE_FIXTURE(stock_fixture, "holds found already expired at recovery are released at once") {
  pair_snapshot snap;
  snap.level = stock_level{"S1", "w1", 10, 4, 0, 0, 0, 7, 3};
  snap.holds.push_back({"old", "w1", 3, now_ms() - 1000, "held"});
  snap.holds.push_back({"live", "w1", 1, now_ms() + 600000, "held"});
  auto p = spawn_pair(snap);
  REQUIRE(ctl->waiting == 1);
  CHECK(ctl->batches[0].expected_version == 7);
  complete_write(*this, store);
  auto l = level(p);
  CHECK(l.reserved == 1);
  CHECK(l.available == 9);
  CHECK(l.version == 8);
}

TEST_CASE_FIXTURE(stock_fixture, "reserves arriving while two writes are in flight become one store call") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{100, 1, false, 0, ""}));
  auto first = reserve_in_flight(p, "a", 1);
  auto second = reserve_in_flight(p, "b", 1);
  REQUIRE(ctl->waiting == 2); // a pair pipelines up to two batches
  CHECK(ctl->batches.back().expected_version == 2); // the second builds on the first
  std::vector<decltype(first)> more;
  for (int i = 0; i < 10; ++i)
    more.push_back(send_request(p, reserve_stock{"c" + std::to_string(i), 2, now_ms() + 60000, ""}));
  run();
  CHECK(ctl->waiting == 2); // queued, not written
  complete_write(*this, store);
  REQUIRE(ctl->waiting == 2); // the ten as one batch
  CHECK(ctl->batches.back().events.size() == 10);
  CHECK(ctl->batches.back().hold_changes.size() == 10);
  CHECK(ctl->batches.size() == 4);
  CHECK(receive<stock_result>(first));
  complete_write(*this, store);
  complete_write(*this, store);
  CHECK(receive<stock_result>(second));
  for (auto& m : more)
    CHECK(receive<stock_result>(m));
  CHECK(level(p).reserved == 22);
}

TEST_CASE_FIXTURE(stock_fixture, "pending reserves are validated against durable plus pending state") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{3, 1, false, 0, ""}));
  auto a = reserve_in_flight(p, "a", 2);
  auto b = send_request(p, reserve_stock{"b", 1, now_ms() + 60000, ""});
  auto c = reserve_in_flight(p, "c", 1);
  auto rc = receive<stock_result>(c); // refused at once: 2 + 1 in flight = 3
  REQUIRE_FALSE(rc);
  CHECK(rc.error().context().get_as<int64_t>(0) == 0);
  complete_all_writes();
  CHECK(receive<stock_result>(a));
  CHECK(receive<stock_result>(b));
}

TEST_CASE_FIXTURE(stock_fixture, "a failed write answers every waiting request with the error and changes nothing") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  auto a = reserve_in_flight(p, "a", 2); // batch 1 in flight
  auto b = reserve_in_flight(p, "b", 2); // batch 2 in flight, built on batch 1
  auto c = send_request(p, adjust_stock{-1, "x", ""});
  run(); // pending
  REQUIRE(ctl->waiting == 2);
  complete_write(*this, store, caf::make_error(errc::unavailable));
  for (auto* pending : {&a, &b, &c}) { // all answered at once, none acknowledged
    auto r = receive<stock_result>(*pending);
    REQUIRE_FALSE(r);
    CHECK(to_errc(r.error()) == errc::unavailable);
  }
  auto l = level(p);
  CHECK(l.on_hand == 10);
  CHECK(l.reserved == 0);
  CHECK(l.version == 1);
  CHECK_FALSE(ask<hold_view>(p, get_hold{"a"})); // rolled back
  // PostgreSQL refuses batch 2 (it expected batch 1's version); the pair
  // waits for that answer before writing again, then serves from durable state.
  auto again = reserve_in_flight(p, "a", 2);
  CHECK(ctl->waiting == 1);
  complete_write(*this, store, caf::make_error(errc::conflict));
  REQUIRE(ctl->waiting == 1);
  CHECK(ctl->batches.back().expected_version == 1);
  complete_write(*this, store);
  auto r = receive<stock_result>(again);
  REQUIRE(r);
  CHECK(r->level.version == 2);
  CHECK(r->level.reserved == 2);
}

TEST_CASE_FIXTURE(stock_fixture, "a batch given up after a failure that commits anyway stops the pair") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  reserve_in_flight(p, "a", 2); // their answers are not the point here
  reserve_in_flight(p, "b", 2);
  self->monitor(p);
  complete_write(*this, store, caf::make_error(errc::unavailable)); // batch 1: unknown outcome
  complete_write(*this, store); // batch 2 committed: PostgreSQL is ahead of the actor
  bool down = false;
  self->receive([&](caf::down_msg& dm) { down = dm.source == p.address(); });
  CHECK(down); // the next request recovers the pair from PostgreSQL
}

TEST_CASE_FIXTURE(stock_fixture, "a later batch refused before an earlier one lands fails only from there on") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  auto a = reserve_in_flight(p, "a", 2); // batch 1 in flight
  auto b = reserve_in_flight(p, "b", 3); // batch 2, not started when the breaker opens
  auto c = send_request(p, reserve_stock{"c", 1, now_ms() + 60000, ""});
  run(); // pending behind them
  self->monitor(p);
  refuse_newest_write(*this, store, caf::make_error(errc::unavailable)); // batch 2
  for (auto* pending : {&b, &c}) {
    auto r = receive<stock_result>(*pending);
    REQUIRE_FALSE(r);
    CHECK(to_errc(r.error()) == errc::unavailable);
  }
  CHECK(ask<stock_level>(p, get_stock_level{true})->reserved == 2); // batch 1's hold only
  complete_write(*this, store); // batch 1 commits: its answer is its outcome
  auto r = receive<stock_result>(a);
  REQUIRE(r);
  CHECK(r->level.reserved == 2);
  CHECK(level(p).reserved == 2);
  CHECK(level(p).version == 2);
  CHECK(ask<hold_view>(p, get_hold{"a"}));
  CHECK_FALSE(ask<hold_view>(p, get_hold{"b"}));
  CHECK(self->mailbox().empty()); // no down message: the pair agrees with PostgreSQL
  auto d = reserve(p, "d", 1);    // and goes on writing
  REQUIRE(d);
  CHECK(ctl->batches.back().expected_version == 2);
}

TEST_CASE_FIXTURE(stock_fixture, "a repeated reserve with the same id is idempotent") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  REQUIRE(reserve(p, "r", 4));
  auto again = reserve(p, "r", 4);
  REQUIRE(again);
  CHECK_FALSE(again->applied);
  CHECK(again->level.reserved == 4);
  auto clash = reserve(p, "r", 5);
  REQUIRE_FALSE(clash);
  CHECK(to_errc(clash.error()) == errc::conflict);
}

TEST_CASE_FIXTURE(stock_fixture, "a pair with live holds refuses passivation, an idle one accepts") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  CHECK(*ask<bool>(p, passivate_atom_v));
  REQUIRE(reserve(p, "r", 1));
  CHECK_FALSE(*ask<bool>(p, passivate_atom_v));
}

TEST_CASE_FIXTURE(stock_fixture, "the read view shows only durable levels; a passivated pair stays in it, a failed one leaves") {
  actors::stock_config cfg;
  cfg.view = std::make_shared<stock_view>();
  auto& view = *cfg.view;
  auto p = spawn_pair({}, cfg);
  REQUIRE(view.find("w1", "S1")); // recovered state is durable
  CHECK(view.find("w1", "S1")->version == 0);
  CHECK_FALSE(view.find("S1", "w1"));
  auto pending = send_request(p, push_stock_level{10, 1, false, 0, ""});
  run();
  CHECK(view.find("w1", "S1")->on_hand == 0); // written, not yet durable
  complete_write(*this, store);
  REQUIRE(receive<stock_result>(pending));
  CHECK(view.find("w1", "S1")->on_hand == 10);
  auto failed = reserve_in_flight(p, "a", 4);
  complete_write(*this, store, caf::make_error(errc::unavailable));
  CHECK_FALSE(receive<stock_result>(failed));
  CHECK(view.find("w1", "S1")->reserved == 0); // a failed write never shows
  auto stop = [&](const stock_actor& a, caf::exit_reason reason) {
    self->monitor(a);
    caf::anon_send_exit(a, reason);
    run();
    self->receive([](caf::down_msg&) {});
  };
  // Stopped idle (the SKU passivates or hands off its pairs with
  // user_shutdown): the last durable level is still read.
  stop(p, caf::exit_reason::user_shutdown);
  REQUIRE(view.find("w1", "S1"));
  CHECK(view.find("w1", "S1")->on_hand == 10);
  // Each incarnation publishes its recovered level: an older one's failure
  // must not withdraw the latest one's, the latest one's own failure does.
  pair_snapshot again;
  again.level = *view.find("w1", "S1");
  auto first = spawn_pair(again, cfg);
  auto second = spawn_pair(again, cfg);
  auto latest = spawn_pair(again, cfg);
  stop(second, caf::exit_reason::kill); // any end but user_shutdown
  REQUIRE(view.find("w1", "S1"));
  stop(first, caf::exit_reason::user_shutdown);
  stop(latest, caf::exit_reason::kill);
  CHECK_FALSE(view.find("w1", "S1"));
  CHECK(view.size() == 0);
}

TEST_CASE_FIXTURE(stock_fixture, "shipping a committed hold takes it off the shelf; a held one cannot ship") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  REQUIRE(reserve(p, "a", 3));
  auto early = durable(p, fulfil_stock{"a", "", ""});
  REQUIRE_FALSE(early);
  CHECK(to_errc(early.error()) == errc::invalid_state);
  REQUIRE(durable(p, commit_stock{"a", "", ""}));
  auto shipped = durable(p, fulfil_stock{"a", "wh", "req-9"});
  REQUIRE(shipped);
  CHECK(shipped->hold.status == "fulfilled");
  CHECK(shipped->level.on_hand == 7);
  CHECK(shipped->level.reserved == 0);
  CHECK(shipped->level.committed == 0);
  CHECK(shipped->level.available == 7);
  CHECK(ctl->batches.back().events.at(0).event_type == "stock_fulfilled");
  CHECK(ctl->batches.back().hold_changes.at(0).status == "fulfilled");
  auto again = durable(p, fulfil_stock{"a", "", ""}); // no longer a live hold
  REQUIRE_FALSE(again);
  CHECK(to_errc(again.error()) == errc::not_found);
}

TEST_CASE_FIXTURE(stock_fixture, "a committed hold is released only when uncommit is asked for") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  REQUIRE(reserve(p, "a", 4));
  REQUIRE(durable(p, commit_stock{"a", "", ""}));
  auto refused = durable(p, release_stock{"a", "", ""});
  REQUIRE_FALSE(refused);
  CHECK(to_errc(refused.error()) == errc::invalid_state);
  auto r = durable(p, release_stock{"a", "", "", true});
  REQUIRE(r);
  CHECK(r->hold.status == "released");
  CHECK(r->level.reserved == 0);
  CHECK(r->level.committed == 0);
  CHECK(r->level.available == 10);
}

TEST_CASE_FIXTURE(stock_fixture, "an extended hold expires at its new time, not the old one") {
  auto p = spawn_pair();
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  REQUIRE(reserve(p, "a", 2, 60s));
  auto hold = *ask<hold_view>(p, get_hold{"a"});
  auto ext = durable(p, extend_hold{"a", hold.expires_at_ms + 120000, "", ""});
  REQUIRE(ext);
  CHECK(ext->applied);
  CHECK(ctl->batches.back().events.at(0).event_type == "reservation_extended");
  auto earlier = durable(p, extend_hold{"a", hold.expires_at_ms, "", ""}); // never shortens
  REQUIRE(earlier);
  CHECK_FALSE(earlier->applied);
  advance_time(61s);
  CHECK(ctl->waiting == 0); // the old expiry passed: nothing happens
  CHECK(level(p).reserved == 2);
  advance_time(120s);
  REQUIRE(ctl->waiting == 1);
  complete_all_writes();
  CHECK(level(p).reserved == 0);
  CHECK_FALSE(ask<hold_view>(p, get_hold{"a"})); // no longer live
}

namespace {

struct feed_recorder : live_feed::subscriber {
  std::vector<std::string> frames;
  void offer(const std::string&, std::shared_ptr<const std::string> frame) override {
    frames.push_back(*frame);
  }
};

} // namespace

TEST_CASE_FIXTURE(stock_fixture, "subscribers see a change only once it is durable, not a failed one") {
  auto feed = std::make_shared<live_feed>();
  std::vector<std::function<void()>> deliveries;
  feed->attach([&](std::function<void()> f) { deliveries.push_back(std::move(f)); });
  auto watcher = std::make_shared<feed_recorder>();
  feed->subscribe_stock("S1", watcher);
  feed->seed_stock(sku_stock{"S1", 0, {}});
  REQUIRE(deliveries.size() == 1);
  deliveries.front()(); // the seeded frame
  deliveries.clear();
  watcher->frames.clear();
  actors::stock_config cfg;
  cfg.feed = feed;
  auto p = spawn_pair({}, cfg);
  REQUIRE(durable(p, push_stock_level{10, 1, false, 0, ""}));
  REQUIRE(deliveries.size() == 1);
  deliveries.front()();
  deliveries.clear();
  REQUIRE(watcher->frames.size() == 1);
  CHECK(watcher->frames[0].find(R"("available":10)") != std::string::npos);
  auto pending = reserve_in_flight(p, "r1", 4);
  CHECK(deliveries.empty()); // written, not yet durable
  complete_write(*this, store, caf::make_error(errc::unavailable));
  CHECK_FALSE(receive<stock_result>(pending));
  CHECK(deliveries.empty()); // failed: nothing to show
  REQUIRE(reserve(p, "r2", 3));
  REQUIRE(deliveries.size() == 1);
  deliveries.front()();
  CHECK(watcher->frames.back().find(R"("available":7)") != std::string::npos);
}

TEST_CASE_FIXTURE(stock_fixture, "a pair crossing its low-stock threshold downwards emits stock_low once per crossing") {
  auto p = spawn_pair();
  auto lows = [this] {
    int n = 0;
    for (auto& b : ctl->batches)
      for (auto& e : b.events)
        n += e.event_type == "stock_low";
    return n;
  };
  REQUIRE(durable(p, push_stock_level{12, 1, true, 10, "wh"})); // above: 12 > 10
  CHECK(lows() == 0);
  REQUIRE(reserve(p, "r1", 1)); // 11
  CHECK(lows() == 0);
  REQUIRE(reserve(p, "r2", 1)); // 10: crosses
  CHECK(lows() == 1);
  auto& e = ctl->batches.back().events.back();
  CHECK(e.event_type == "stock_low");
  CHECK(e.data_json.find("\"available\":10") != std::string::npos);
  CHECK(e.event_version == ctl->batches.back().after.version); // the batch's last event
  REQUIRE(reserve(p, "r3", 1)); // 9: still under, no second event
  REQUIRE(reserve(p, "r4", 1));
  CHECK(lows() == 1);
  REQUIRE(durable(p, release_stock{"r1", "u1", ""})); // 9
  REQUIRE(durable(p, push_stock_level{30, 2, true, 10, "wh"})); // back above
  CHECK(lows() == 1);
  REQUIRE(reserve(p, "r5", 20)); // 30 - 3 - 20 = 7: crosses again
  CHECK(lows() == 2);
}
