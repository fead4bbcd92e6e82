#include "actors/sku.hpp"

#include "protocols/ids.hpp"
#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

/// S1 with 5 units in w1 and 5 in w2, recovered from the store double.
struct sku_fixture : test::with_store_double {
  caf::actor sku;

  sku_fixture() {
    ctl->stored.sku = "S1";
    for (auto wh : {"w1", "w2"}) {
      pair_snapshot p;
      p.level = stock_level{"S1", wh, 5, 0, 0, 5, 0, 1, 0};
      ctl->stored.pairs.push_back(p);
    }
    sku = actors::spawn_sku(sys, "S1", store, {});
    run();
  }

  int64_t in_a_minute() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count()
           + 60000;
  }

  reserve_any any(std::string id, int64_t qty, bool idempotent = false) {
    return reserve_any{std::move(id), qty, in_a_minute(), "alice", "req", "", idempotent};
  }

  stock_level level(const std::string& wh) {
    auto l = ask<stock_level>(sku, at_pair<get_stock_level>{wh, {}});
    REQUIRE(l);
    return *l;
  }

  int64_t reserved() { return level("w1").reserved + level("w2").reserved; }
};

} // namespace

TEST_CASE_FIXTURE(sku_fixture, "a reservation larger than any warehouse splits, largest first") {
  auto pending = send_request(sku, any("r1", 8));
  run();
  complete_all_writes();
  auto r = receive<reservation>(pending);
  REQUIRE(r);
  REQUIRE(r->allocations.size() == 2);
  CHECK(r->allocations[0].quantity + r->allocations[1].quantity == 8);
  CHECK(reserved() == 8);
  auto none = ask<reservation>(sku, any("r2", 3));
  REQUIRE_FALSE(none);
  CHECK(to_errc(none.error()) == errc::insufficient_stock);
  CHECK(none.error().context().get_as<int64_t>(0) == 2);
}

TEST_CASE_FIXTURE(sku_fixture, "a part that commits after a long wait is released when another part fails") {
  auto pending = send_request(sku, any("r1", 8));
  run();
  REQUIRE(ctl->waiting == 2); // one write per pair
  advance_time(30s);          // slower than any actor timeout: the parts still count
  CHECK(self->mailbox().empty());
  complete_write(*this, store);                                   // one part commits
  complete_write(*this, store, caf::make_error(errc::unavailable)); // the other fails
  REQUIRE(ctl->waiting == 1); // the committed part is given back before the answer
  CHECK(self->mailbox().empty());
  CHECK(ctl->batches.back().events.at(0).event_type == "reservation_released");
  complete_write(*this, store);
  auto r = receive<reservation>(pending);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::unavailable);
  CHECK(reserved() == 0);
}

TEST_CASE_FIXTURE(sku_fixture, "a failed release of a part is tried again, and the answer waits for it") {
  auto pending = send_request(sku, any("r1", 8));
  run();
  complete_write(*this, store);
  complete_write(*this, store, caf::make_error(errc::unavailable));
  REQUIRE(ctl->waiting == 1);
  complete_write(*this, store, caf::make_error(errc::unavailable)); // the release fails too
  CHECK(ctl->waiting == 0);
  CHECK(self->mailbox().empty());
  CHECK(reserved() == 5); // still held: not answered yet
  advance_time(1100ms);
  REQUIRE(ctl->waiting == 1); // tried again
  complete_write(*this, store);
  auto r = receive<reservation>(pending);
  REQUIRE_FALSE(r);
  CHECK(reserved() == 0);
}

TEST_CASE_FIXTURE(sku_fixture, "a reservation that is not possible as a whole holds nothing and says what is available") {
  auto r = ask<reservation>(sku, any("r1", 11));
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::insufficient_stock);
  CHECK(r.error().context().get_as<int64_t>(0) == 10);
  CHECK(ctl->batches.empty());
}

TEST_CASE_FIXTURE(sku_fixture, "an Idempotency-Key retry after a release answers the released reservation and holds nothing") {
  auto keyed = [this](int64_t qty) {
    auto cmd = any("", qty, true);
    cmd.idempotency_key = "k1";
    return cmd;
  };
  auto first = send_request(sku, keyed(2));
  run();
  complete_all_writes();
  auto r = receive<reservation>(first);
  REQUIRE(r);
  auto id = r->reservation_id;
  CHECK(id == derived_id("rsv_", "alice", "k1")); // the SKU makes the id from the key
  auto wh = r->allocations.at(0).warehouse;
  auto released = send_request(sku, release_reservation{id, "alice", "req"});
  run();
  complete_all_writes();
  REQUIRE(receive<reservation>(released));
  CHECK(reserved() == 0);
  // What PostgreSQL now has for it.
  ctl->reservations[id] = reservation_rows{"S1", {{id, wh, 2, r->expires_at_ms, "released", "alice"}}};
  auto batches = ctl->batches.size();
  auto again = ask<reservation>(sku, keyed(2));
  REQUIRE(again);
  CHECK(again->status == "released");
  CHECK(again->reservation_id == id);
  CHECK(ctl->waiting == 0);
  CHECK(ctl->batches.size() == batches); // nothing written
  CHECK(reserved() == 0);
  auto different = ask<reservation>(sku, keyed(3));
  REQUIRE_FALSE(different);
  CHECK(to_errc(different.error()) == errc::conflict);
  CHECK(reserved() == 0);
}

TEST_CASE_FIXTURE(sku_fixture, "a reservation without id or expiry gets both from the SKU and its clock") {
  auto cmd = any("", 1);
  cmd.expires_at_ms = 0;
  cmd.ttl_ms = 60000;
  auto pending = send_request(sku, cmd);
  run();
  complete_all_writes();
  auto r = receive<reservation>(pending);
  REQUIRE(r);
  CHECK(r->reservation_id.rfind("rsv_", 0) == 0);
  CHECK(r->expires_at_ms >= in_a_minute() - 1000);
  CHECK(r->expires_at_ms <= in_a_minute());
}

TEST_CASE_FIXTURE(sku_fixture, "the SKU shows its pairs to the view; passivated they stay, crashed they leave") {
  actors::stock_config cfg;
  cfg.view = std::make_shared<cluster::stock_view>();
  auto s = actors::spawn_sku(sys, "S1", store, cfg);
  run();
  auto all = cfg.view->find_sku("S1");
  REQUIRE(all);
  CHECK(all->available == 10);
  REQUIRE(all->warehouses.size() == 2);
  CHECK(all->warehouses[1].warehouse == "w2");
  // A new warehouse joins the list once its pair exists.
  auto pushed = send_request(s, at_pair<push_stock_level>{"w3", {4, 1, false, 0, ""}});
  run();
  complete_all_writes();
  REQUIRE(receive<stock_result>(pushed));
  REQUIRE(cfg.view->find_sku("S1"));
  CHECK(cfg.view->find_sku("S1")->available == 14);
  auto agreed = ask<bool>(s, passivate_atom_v);
  REQUIRE(agreed);
  REQUIRE(*agreed);
  run();
  REQUIRE(cfg.view->find_sku("S1")); // stopped idle: still read
  CHECK(cfg.view->find_sku("S1")->warehouses.size() == 3);
  // A later incarnation that dies withdraws its list.
  auto again = actors::spawn_sku(sys, "S1", store, cfg);
  run();
  self->monitor(again);
  caf::anon_send_exit(again, caf::exit_reason::kill);
  run();
  self->receive([](caf::down_msg&) {});
  CHECK_FALSE(cfg.view->find_sku("S1"));
}
