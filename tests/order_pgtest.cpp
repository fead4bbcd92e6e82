// Orders against real PostgreSQL: a live saga's state equals its replay from
// the stored stream, appends to one stream conflict, unfinished sagas are found.
#include "actors/order.hpp"
#include "actors/sku.hpp"
#include "persistence/migrations.hpp"
#include "persistence/pg_store.hpp"
#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/type_ids.hpp"
#include "tests/support/deterministic.hpp"
#include "tests/support/payment_double.hpp"
#include "tests/support/pg.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <cstdlib>
#include <thread>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

struct order_system {
  test::pg_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::string dsn = test::fresh_database("pgorder_");
  store_actor store = persistence::spawn_pg_store(sys, {dsn, 2, std::chrono::milliseconds{5000}});
  std::shared_ptr<test::payment_control> pay = std::make_shared<test::payment_control>();
  caf::actor payments = sys.spawn(test::payment_double, pay);
  caf::actor directory = test::spawn_directory(sys, [this](const entity_key& key) {
    if (key.kind == entity_kind::sku)
      return actors::spawn_sku(sys, key.id, store, {});
    actors::order_config oc;
    oc.resolve = [this](const entity_key&) { return directory; };
    oc.payments = payments;
    oc.payment_retry = 50ms;
    return actors::spawn_order(sys, key.id, store, oc);
  });

  ~order_system() {
    self->send_exit(directory, caf::exit_reason::user_shutdown);
    self->send_exit(payments, caf::exit_reason::user_shutdown);
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }

  template <class T>
  caf::expected<T> ask(const entity_key& key, caf::message msg) {
    caf::expected<T> out{caf::make_error(errc::internal)};
    self->request(directory, 10s, route_atom_v, key, std::move(msg))
      .receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  /// The order once its status is `status` (the saga runs on its own).
  order_view wait_for(const std::string& id, const std::string& status) {
    order_view v;
    for (int i = 0; i < 500; ++i) {
      auto r = ask<order_view>(order_key(id), caf::make_message(get_order{{"ops-1", "ops"}}));
      REQUIRE(r);
      v = *r;
      if (v.status == status)
        break;
      std::this_thread::sleep_for(10ms); // an integration test: the saga runs on real threads
    }
    REQUIRE(v.status == status);
    return v;
  }

  /// Stops the order's actor and makes the directory forget it: the next
  /// message recovers it from PostgreSQL.
  void forget(const std::string& id) {
    self->send(directory, order_key(id));
  }

  entity_ids unsettled(std::string type = "order") {
    entity_ids out;
    self->request(caf::actor_cast<caf::actor>(store), 10s, find_unsettled{std::move(type)})
      .receive([&](entity_ids& x) { out = std::move(x); }, [&](caf::error&) {});
    return out;
  }
};

} // namespace

TEST_CASE("a live order and its replay from PostgreSQL have identical state") {
  order_system s;
  REQUIRE(s.ask<stock_result>(sku_key("S1"), caf::make_message(at_pair<push_stock_level>{"w1", {5, 1}})));
  auto placed = s.ask<order_view>(
    order_key("o1"), caf::make_message(place_order{"crt_1", "alice", {{"S1", 2, 1500}}, "EUR", "card",
                                              "tok", R"({"country":"DE","city":"Köln"})", "req"}));
  REQUIRE(placed);
  auto live = s.wait_for("o1", "paid");
  auto cancelled = s.ask<order_view>(order_key("o1"), caf::make_message(order_action{"cancel", {"alice", "customer"}}));
  REQUIRE(cancelled);
  live = *cancelled;
  CHECK(live.payment_status == "refunded");
  s.forget("o1");
  auto replayed = s.ask<order_view>(order_key("o1"), caf::make_message(get_order{{"alice", "customer"}}));
  REQUIRE(replayed);
  CHECK(*replayed == live);
  auto events = s.ask<std::vector<domain_event>>(order_key("o1"),
                                                 caf::make_message(get_order_events{{"alice", "customer"}}));
  REQUIRE(events);
  CHECK(static_cast<int64_t>(events->size()) == live.version);
  for (size_t i = 0; i < events->size(); ++i)
    CHECK((*events)[i].event_version == static_cast<int64_t>(i + 1));
  // The stored row agrees, and the token is gone once used.
  pqxx::connection c{s.dsn};
  pqxx::nontransaction tx{c};
  auto row = tx.exec("SELECT status, version, state::text FROM entity_state "
                     "WHERE aggregate_type = 'order' AND aggregate_id = 'o1'");
  CHECK(row[0][0].as<std::string>() == "cancelled");
  CHECK(row[0][1].as<int64_t>() == live.version);
  CHECK(row[0][2].as<std::string>() == R"({"saga": "settled"})");
  CHECK(tx.exec("SELECT status FROM stock_holds WHERE reservation_id = 'o1.1'")[0][0].as<std::string>()
        == "released");
}

TEST_CASE("two appends to one order stream built on the same version: exactly one lands") {
  order_system s;
  auto event = [](int64_t v) {
    return domain_event{new_uuid(), v == 1 ? "order_placed" : "order_cancelled", "o1", "order",
                        v, 0, "{}", "c", "", "u", "n"};
  };
  entity_write first{0, {"order", "o1", 1, "alice", "pending", "{}", 0}, {event(1)}};
  caf::expected<ok_atom> r{caf::make_error(errc::internal)};
  s.self->request(caf::actor_cast<caf::actor>(s.store), 10s, first)
    .receive([&](ok_atom) { r = ok_atom_v; }, [&](caf::error& e) { r = e; });
  REQUIRE(r);
  entity_write a{1, {"order", "o1", 2, "alice", "cancelled", "{}", 0}, {event(2)}};
  entity_write b{1, {"order", "o1", 2, "alice", "paid", "{}", 0}, {event(2)}};
  auto ha = s.self->request(caf::actor_cast<caf::actor>(s.store), 10s, a);
  auto hb = s.self->request(caf::actor_cast<caf::actor>(s.store), 10s, b);
  int ok = 0, conflicts = 0;
  for (auto* h : {&ha, &hb})
    h->receive([&](ok_atom) { ++ok; },
               [&](caf::error& e) { conflicts += to_errc(e) == errc::conflict ? 1 : 0; });
  CHECK(ok == 1);
  CHECK(conflicts == 1);
  pqxx::connection c{s.dsn};
  CHECK(pqxx::nontransaction{c}
          .exec("SELECT count(*) FROM events WHERE aggregate_type = 'order'")[0][0]
          .as<int64_t>()
        == 2);
}

TEST_CASE("an order waiting for a provider is unsettled until its saga ends") {
  order_system s;
  REQUIRE(s.ask<stock_result>(sku_key("S1"), caf::make_message(at_pair<push_stock_level>{"w1", {5, 1}})));
  s.pay->mode = "down";
  REQUIRE(s.ask<order_view>(order_key("o1"), caf::make_message(place_order{"crt_1", "alice", {{"S1", 1, 100}},
                                                                       "EUR", "card", "tok", "{}", "r"})));
  s.wait_for("o1", "pending");
  auto waiting = s.unsettled();
  CHECK(waiting.ids == std::vector<std::string>{"o1"});
  auto cancelled = s.ask<order_view>(order_key("o1"), caf::make_message(order_action{"cancel", {"ops-1", "ops"}}));
  REQUIRE(cancelled);
  CHECK(cancelled->status == "cancelled");
  CHECK(s.unsettled().ids.empty());
}

TEST_CASE("a SKU is unsettled while a pair holds stock for a live reservation") {
  order_system s;
  REQUIRE(s.ask<stock_result>(sku_key("S1"), caf::make_message(at_pair<push_stock_level>{"w1", {5, 1}})));
  REQUIRE(s.ask<stock_result>(sku_key("S2"), caf::make_message(at_pair<push_stock_level>{"w1", {5, 1}})));
  CHECK(s.unsettled("sku").ids.empty());
  REQUIRE(s.ask<stock_result>(sku_key("S2"), caf::make_message(at_pair<reserve_stock>{
                                                "w1", {"rsv_1", 2, 0, "alice", "r", 60000}})));
  CHECK(s.unsettled("sku").ids == std::vector<std::string>{"S2"});
  REQUIRE(s.ask<stock_result>(sku_key("S2"), caf::make_message(at_pair<release_stock>{
                                                "w1", {"rsv_1", "alice", "r"}})));
  CHECK(s.unsettled("sku").ids.empty());
}
