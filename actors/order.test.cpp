#include "actors/order.hpp"
#include "actors/sku.hpp"

#include "tests/support/deterministic.hpp"
#include "tests/support/payment_double.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

struct saga_fixture : test::with_store_double {
  std::shared_ptr<test::payment_control> pay = std::make_shared<test::payment_control>();
  caf::actor payments = sys.spawn(test::payment_double, pay);
  caf::actor directory;

  saga_fixture() {
    // S1: 3 units in w1, 2 in w2.
    ctl->stored.sku = "S1";
    for (auto [wh, n] : {std::pair{"w1", 3}, std::pair{"w2", 2}}) {
      pair_snapshot p;
      p.level = stock_level{"S1", wh, n, 0, 0, n, 0, 1, 0};
      ctl->stored.pairs.push_back(p);
    }
    directory = test::spawn_directory(sys, [this](const entity_key& key) {
      if (key.kind == entity_kind::sku)
        return actors::spawn_sku(sys, key.id, store, {});
      return actors::spawn_order(sys, key.id, store, config());
    });
  }

  actors::order_config config() {
    actors::order_config cfg;
    cfg.resolve = [this](const entity_key&) { return directory; };
    cfg.payments = payments;
    cfg.hold_ttl = 900s;
    cfg.payment_retry = 5s;
    cfg.payment_retry_max = 60s;
    cfg.payment_max_wait = 1200s; // longer than the hold TTL: holds get extended
    return cfg;
  }

  /// Runs until nothing moves, answering every store write as it comes.
  void settle() {
    run();
    while (ctl->waiting > 0)
      complete_all_writes();
  }

  template <class T, class Msg>
  caf::expected<T> ask_order(const std::string& id, Msg msg) {
    auto pending = send_request(directory, caf::make_message(route_atom_v, order_key(id),
                                                             caf::make_message(std::move(msg))));
    settle();
    return receive<T>(pending);
  }

  caf::expected<order_view> place(const std::string& id, int64_t qty, const std::string& token = "tok") {
    return ask_order<order_view>(
      id, place_order{"crt_1", "alice", {{"S1", qty, 1000}}, "EUR", "card", token, R"({"country":"DE"})", "req"});
  }

  order_view order(const std::string& id) {
    auto v = ask_order<order_view>(id, get_order{{"alice", "customer"}});
    REQUIRE(v);
    return *v;
  }

  caf::expected<order_view> act(const std::string& id, const std::string& action,
                                caller who = {"alice", "customer"}) {
    return ask_order<order_view>(id, order_action{action, who});
  }

  std::vector<std::string> event_types(const std::string& id) {
    std::vector<std::string> out;
    for (auto& e : ctl->events["order/" + id])
      out.push_back(e.event_type);
    return out;
  }

  /// The pair's durable level, from the SKU actor.
  stock_level level(const std::string& wh) {
    auto pending = send_request(directory, caf::make_message(route_atom_v, sku_key("S1"),
                                                             caf::make_message(at_pair<get_stock_level>{wh, {}})));
    run();
    auto l = receive<stock_level>(pending);
    REQUIRE(l);
    return *l;
  }

  std::vector<std::string> ops() {
    std::vector<std::string> out;
    for (auto& c : pay->calls)
      out.push_back(c.op + ":" + c.idempotency_key);
    return out;
  }

  /// Kills the order's actor (a crashed node) and lets the directory forget it.
  void crash(const std::string& id) {
    auto key = order_key(id);
    self->send(directory, key);
    run();
  }
};

} // namespace

TEST_CASE_FIXTURE(saga_fixture, "checkout: reserve across warehouses, authorize, commit, capture -> paid") {
  auto placed = place("o1", 4);
  REQUIRE(placed);
  CHECK(placed->version >= 1);
  auto o = order("o1");
  CHECK(o.status == "paid");
  CHECK(o.payment_status == "captured");
  CHECK(o.total_minor == 4000);
  REQUIRE(o.allocations.size() == 2); // 3 from w1, 1 from w2: largest first
  CHECK(o.allocations[0].quantity + o.allocations[1].quantity == 4);
  CHECK(event_types("o1") == std::vector<std::string>{"order_placed", "stock_reserved",
                                                      "payment_authorized", "stock_committed",
                                                      "order_paid"});
  CHECK(level("w1").committed + level("w2").committed == 4);
  CHECK(ops() == std::vector<std::string>{"authorize:o1:authorize", "capture:o1:capture"});
  CHECK(ctl->entities["order/o1"].state_json.find("\"saga\":\"settled\"") != std::string::npos);
  CHECK(ctl->entities["order/o1"].state_json.find("payment_token") == std::string::npos);
}

TEST_CASE_FIXTURE(saga_fixture, "the order is placed durably before the answer, and a repeat answers it") {
  auto pending = send_request(directory, caf::make_message(route_atom_v, order_key("o1"),
    caf::make_message(place_order{"crt_1", "alice", {{"S1", 1, 1000}}, "EUR", "card", "tok", "{}", "r"})));
  run();
  REQUIRE(ctl->waiting == 1);
  complete_write(*this, store);
  auto v = receive<order_view>(pending);
  REQUIRE(v);
  CHECK(v->status == "pending");
  settle();
  auto again = place("o1", 1);
  REQUIRE(again);
  CHECK(again->status == "paid");
  CHECK(pay->calls.size() == 2); // authorize + capture, once
  auto other = ask_order<order_view>(
    "o1", place_order{"crt_other", "bob", {{"S1", 1, 1000}}, "EUR", "card", "tok", "{}", "r"});
  CHECK(to_errc(other.error()) == errc::conflict);
}

TEST_CASE_FIXTURE(saga_fixture, "insufficient stock fails the order and holds nothing") {
  REQUIRE(place("o1", 6));
  auto o = order("o1");
  CHECK(o.status == "failed");
  CHECK(o.reason == "insufficient_stock:S1");
  CHECK(pay->calls.empty());
  CHECK(level("w1").reserved == 0);
  CHECK(level("w2").reserved == 0);
  CHECK(event_types("o1") == std::vector<std::string>{"order_placed", "order_failed"});
}

TEST_CASE_FIXTURE(saga_fixture, "a failed order reads failed only once its holds are released") {
  pay->mode = "decline";
  auto placed = send_request(directory, caf::make_message(route_atom_v, order_key("o1"),
    caf::make_message(place_order{"crt_1", "alice", {{"S1", 2, 1000}}, "EUR", "card", "tok", "{}", "r"})));
  run();
  bool seen_undoing = false; // order_failed durable, the release not yet
  for (int i = 0; i < 50 && ctl->waiting > 0; ++i) {
    complete_write(*this, store); // one write at a time, reading in between
    auto pending = send_request(directory, caf::make_message(route_atom_v, order_key("o1"),
                                                             caf::make_message(get_order{{"alice", "customer"}})));
    run();
    auto v = receive<order_view>(pending);
    REQUIRE(v);
    auto types = event_types("o1");
    bool failed_recorded = std::find(types.begin(), types.end(), "order_failed") != types.end();
    if (v->status == "failed") {
      CHECK(level("w1").reserved + level("w2").reserved == 0);
    } else if (failed_recorded) {
      seen_undoing = true;
      CHECK(v->status == "reserved"); // the status it had, until the compensation is durable
      auto cancel = send_request(directory, caf::make_message(route_atom_v, order_key("o1"),
        caf::make_message(order_action{"cancel", {"alice", "customer"}})));
      run();
      auto refused = receive<order_view>(cancel);
      REQUIRE_FALSE(refused);
      CHECK(to_errc(refused.error()) == errc::invalid_state);
    }
  }
  CHECK(seen_undoing);
  CHECK(receive<order_view>(placed));
  CHECK(order("o1").status == "failed");
}

TEST_CASE_FIXTURE(saga_fixture, "a declined payment releases the holds and fails the order") {
  pay->mode = "decline";
  REQUIRE(place("o1", 2));
  auto o = order("o1");
  CHECK(o.status == "failed");
  CHECK(o.reason == "payment_declined");
  CHECK(o.payment_status == "declined");
  CHECK(level("w1").reserved == 0);
  CHECK(event_types("o1") == std::vector<std::string>{"order_placed", "stock_reserved",
                                                      "order_failed", "stock_released"});
  CHECK(ops() == std::vector<std::string>{"authorize:o1:authorize"}); // no void: nothing authorized
}

TEST_CASE_FIXTURE(saga_fixture, "both providers down: pending with holds extended, then resumed by the retry timer") {
  pay->mode = "down";
  REQUIRE(place("o1", 2));
  auto o = order("o1");
  CHECK(o.status == "pending");
  CHECK(o.payment_status == "queued");
  auto types = event_types("o1");
  CHECK(types == std::vector<std::string>{"order_placed", "stock_reserved", "payment_deferred",
                                          "holds_extended"});
  CHECK(level("w1").reserved == 2); // still held
  pay->mode = "ok";
  advance_time(4s);
  settle();
  CHECK(order("o1").status == "pending"); // not before the retry time
  advance_time(2s);
  settle();
  o = order("o1");
  CHECK(o.status == "paid");
  CHECK(level("w1").committed == 2);
  // Every authorize carried the same key: a provider charges once.
  for (auto& c : pay->calls)
    if (c.op == "authorize")
      CHECK(c.idempotency_key == "o1:authorize");
}

TEST_CASE_FIXTURE(saga_fixture, "a crash while the payment is queued: the recovered order keeps waiting, then pays") {
  pay->mode = "down";
  REQUIRE(place("o1", 2));
  REQUIRE(order("o1").payment_status == "queued");
  crash("o1");
  pay->mode = "ok";
  self->send(directory, route_atom_v, order_key("o1"), caf::make_message(resume_atom_v));
  settle();
  CHECK(order("o1").status == "pending"); // its retry time has not come
  advance_time(6s);
  settle();
  CHECK(order("o1").status == "paid");
}

TEST_CASE_FIXTURE(saga_fixture, "a payment queued past the maximum wait cancels the order and releases its stock") {
  pay->mode = "down";
  REQUIRE(place("o1", 2));
  for (int i = 0; i < 25; ++i) { // retries back off to 60 s; the wait is 1200 s
    advance_time(60s);
    settle();
  }
  auto o = order("o1");
  CHECK(o.status == "cancelled");
  CHECK(o.reason == "payment_unavailable");
  CHECK(level("w1").reserved == 0);
  CHECK(level("w2").reserved == 0);
  auto types = event_types("o1");
  CHECK(std::count(types.begin(), types.end(), "holds_extended") >= 1);
}

TEST_CASE_FIXTURE(saga_fixture, "a crash while the payment is under way resumes from the last event, same keys") {
  pay->mode = "hold"; // the provider has not answered yet
  REQUIRE(place("o1", 2));
  CHECK(event_types("o1").back() == "stock_reserved");
  REQUIRE(pay->calls.size() == 1);
  crash("o1");
  pay->mode = "ok";
  // The next message to the order (e.g. resume at startup) recovers it by replay.
  self->send(directory, route_atom_v, order_key("o1"), caf::make_message(resume_atom_v));
  settle();
  auto o = order("o1");
  CHECK(o.status == "paid");
  CHECK(ops() == std::vector<std::string>{"authorize:o1:authorize", "authorize:o1:authorize",
                                          "capture:o1:capture"});
  CHECK(level("w1").reserved == 2); // the same holds, not new ones
  CHECK(level("w1").committed == 2);
}

TEST_CASE_FIXTURE(saga_fixture, "a crash after authorization resumes with commit and capture, never a second authorize") {
  pay->mode = "ok";
  static_cast<void>(send_request(directory, caf::make_message(route_atom_v, order_key("o1"),
    caf::make_message(place_order{"crt_1", "alice", {{"S1", 1, 1000}}, "EUR", "card", "tok", "{}", "r"}))));
  // Answer writes one by one until payment_authorized landed, then crash.
  run();
  while (event_types("o1").empty() || event_types("o1").back() != "payment_authorized")
    complete_write(*this, store);
  crash("o1");
  complete_all_writes(); // whatever the dead actor had in flight
  self->send(directory, route_atom_v, order_key("o1"), caf::make_message(resume_atom_v));
  settle();
  CHECK(order("o1").status == "paid");
  CHECK(ops() == std::vector<std::string>{"authorize:o1:authorize", "capture:o1:capture"});
}

TEST_CASE_FIXTURE(saga_fixture, "cancel while pending on the provider releases the holds") {
  pay->mode = "down";
  REQUIRE(place("o1", 2));
  REQUIRE(order("o1").status == "pending");
  auto o = act("o1", "cancel");
  REQUIRE(o);
  CHECK(o->status == "cancelled");
  CHECK(level("w1").reserved == 0);
  CHECK(ops() == std::vector<std::string>{"authorize:o1:authorize"});
}

TEST_CASE_FIXTURE(saga_fixture, "cancel while reserved waits for the authorization, then voids it and releases") {
  pay->mode = "hold";
  REQUIRE(place("o1", 2));
  REQUIRE(order("o1").status == "reserved");
  auto pending = send_request(directory, caf::make_message(route_atom_v, order_key("o1"),
    caf::make_message(order_action{"cancel", {"alice", "customer"}})));
  settle();
  pay->mode = "ok";
  REQUIRE(pay->held.size() == 1);
  self->send(payments, ok_atom_v);
  settle();
  auto o = receive<order_view>(pending);
  REQUIRE(o);
  CHECK(o->status == "cancelled");
  CHECK(o->payment_status == "voided");
  CHECK(level("w1").reserved == 0);
  CHECK(ops() == std::vector<std::string>{"authorize:o1:authorize", "void:o1:void"});
}

TEST_CASE_FIXTURE(saga_fixture, "cancel after payment refunds and un-commits; a shipped order cannot be cancelled") {
  REQUIRE(place("o1", 2));
  REQUIRE(order("o1").status == "paid");
  auto o = act("o1", "cancel");
  REQUIRE(o);
  CHECK(o->status == "cancelled");
  CHECK(o->payment_status == "refunded");
  CHECK(level("w1").committed == 0);
  CHECK(level("w1").reserved == 0);
  CHECK(level("w1").on_hand == 3);

  REQUIRE(place("o2", 1));
  REQUIRE(act("o2", "ship", {"ops-1", "ops"}));
  auto late = act("o2", "cancel");
  CHECK(to_errc(late.error()) == errc::invalid_state);
}

TEST_CASE_FIXTURE(saga_fixture, "ship, deliver, return: stock leaves, comes back, and the payment is refunded") {
  REQUIRE(place("o1", 2));
  CHECK(to_errc(act("o1", "ship").error()) == errc::forbidden); // customers don't ship
  CHECK(to_errc(act("o1", "ship", {"wh-9", "warehouse", {"w9"}}).error()) == errc::forbidden);
  CHECK(to_errc(act("o1", "deliver", {"ops-1", "ops"}).error()) == errc::invalid_state);
  auto shipped = act("o1", "ship", {"wh-1", "warehouse", {"w1", "w2"}});
  REQUIRE(shipped);
  CHECK(shipped->status == "shipped");
  CHECK(level("w1").on_hand == 1);
  CHECK(to_errc(act("o1", "return").error()) == errc::invalid_state); // not delivered yet
  REQUIRE(act("o1", "deliver", {"ops-1", "ops"}));
  CHECK(to_errc(act("o1", "return", {"bob", "customer"}).error()) == errc::forbidden);
  auto returned = act("o1", "return");
  REQUIRE(returned);
  CHECK(returned->status == "returned");
  CHECK(returned->payment_status == "refunded");
  CHECK(level("w1").on_hand == 3);
  CHECK(to_errc(act("o1", "return").error()) == errc::invalid_state);
}

TEST_CASE_FIXTURE(saga_fixture, "reads: owner, ops and the shipping warehouse; nobody else; unknown ids are 404") {
  REQUIRE(place("o1", 1));
  CHECK(ask_order<order_view>("o1", get_order{{"alice", "customer"}}));
  CHECK(ask_order<order_view>("o1", get_order{{"ops-1", "ops"}}));
  CHECK(ask_order<order_view>("o1", get_order{{"wh-1", "warehouse", {"w1"}}}));
  CHECK(to_errc(ask_order<order_view>("o1", get_order{{"bob", "customer"}}).error())
        == errc::forbidden);
  CHECK(to_errc(ask_order<order_view>("o1", get_order{{"wh-2", "warehouse", {"w2"}}}).error())
        == errc::forbidden);
  auto events = ask_order<std::vector<domain_event>>("o1", get_order_events{{"alice", "customer"}});
  REQUIRE(events);
  CHECK(events->size() == 5);
  CHECK(events->front().event_version == 1);
  CHECK(to_errc(ask_order<order_view>("nope", get_order{{"alice", "customer"}}).error())
        == errc::not_found);
}

TEST_CASE_FIXTURE(saga_fixture, "a failed store write changes nothing and the step is tried again later") {
  auto pending = send_request(directory, caf::make_message(route_atom_v, order_key("o1"),
    caf::make_message(place_order{"crt_1", "alice", {{"S1", 1, 1000}}, "EUR", "card", "tok", "{}", "r"})));
  run();
  complete_write(*this, store); // order_placed
  REQUIRE(receive<order_view>(pending));
  REQUIRE(ctl->batches.size() == 1); // the hold's stock write
  complete_write(*this, store);
  // The stock_reserved write fails: nothing changes, then the retry timer goes on.
  REQUIRE(ctl->waiting == 1);
  REQUIRE(ctl->entity_writes.back().events.front().event_type == "stock_reserved");
  complete_write(*this, store, caf::make_error(errc::unavailable));
  CHECK(order("o1").status == "pending");
  advance_time(6s);
  settle();
  CHECK(order("o1").status == "paid");
  CHECK(level("w1").reserved == 1); // the retry found the same hold
}

TEST_CASE("replaying the events gives the state the live actor had") {
  saga_fixture f;
  REQUIRE(f.place("o1", 4));
  REQUIRE(f.act("o1", "cancel"));
  auto live = f.order("o1");
  auto replayed = actors::replay("o1", f.ctl->events["order/o1"], f.ctl->entities["order/o1"]);
  CHECK(replayed.view == live);
  CHECK(actors::settled(replayed));
}
