// Against real PostgreSQL (EMPORIUM_TEST_PG, started by scripts/test.sh): the
// store's transactions, migrations, and exact recovery of a SKU's actors.
#include "actors/sku.hpp"
#include "persistence/migrations.hpp"
#include "persistence/pg_store.hpp"
#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/type_ids.hpp"
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

using test::fresh_database;
using test::server_dsn;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string scalar(const std::string& dsn, const std::string& sql) {
  pqxx::connection c{dsn};
  pqxx::nontransaction tx{c};
  auto r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? "" : r[0][0].as<std::string>();
}

struct system_fixture {
  test::pg_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::string dsn = fresh_database();
  store_actor store = persistence::spawn_pg_store(sys, {dsn, 2, std::chrono::milliseconds{5000}});

  ~system_fixture() {
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }

  template <class T, class Handle, class Msg>
  caf::expected<T> ask(const Handle& h, Msg msg) {
    return test::ask<T>(self, h, std::move(msg));
  }

  template <class T, class Cmd>
  caf::expected<T> on_pair(const caf::actor& sku, const std::string& wh, Cmd cmd) {
    return ask<T>(sku, at_pair<Cmd>{wh, std::move(cmd)});
  }

  void stop(const caf::actor& a) {
    self->send_exit(a, caf::exit_reason::kill);
    self->wait_for(a);
  }
};

stock_batch first_batch(const std::string& sku, const std::string& wh) {
  stock_batch b;
  b.expected_version = 0;
  b.after = stock_level{sku, wh, 10, 0, 0, 10, 3, 1, 1};
  b.events.push_back(domain_event{new_uuid(), "stock_level_pushed", sku + "@" + wh, "stock", 1,
                                  now_ms(), R"({"on_hand":10})", "c", "", "u", "n"});
  return b;
}

entity_write cart_write(int64_t expected, const std::string& state) {
  entity_write w;
  w.expected_version = expected;
  w.after = entity_record{"cart", "crt_1", expected + 1, "u1", "open", state, now_ms()};
  w.events.push_back(domain_event{new_uuid(), expected == 0 ? "cart_created" : "cart_item_set",
                                  "crt_1", "cart", expected + 1, now_ms(), "{}", "c", "", "u1",
                                  "n"});
  return w;
}

} // namespace

TEST_CASE("migrations are recorded and applying them twice is a no-op") {
  auto dsn = fresh_database(); // applied once here
  auto again = persistence::migrate(dsn);
  REQUIRE(again);
  CHECK(*again == 0);
  CHECK(scalar(dsn, "SELECT count(*) FROM schema_migrations")
        == std::to_string(persistence::migrations().size()));
}

TEST_CASE("migration 007 turns every event row into an outbox row of its own, the same events in the same order") {
  auto base = test::server_dsn();
  auto name = "pgtest_" + new_id("").substr(0, 12);
  {
    pqxx::connection c{base};
    pqxx::nontransaction{c}.exec("CREATE DATABASE " + name);
  }
  auto dsn = base.substr(0, base.rfind('/') + 1) + name;
  const std::string view_order
    = "SELECT string_agg(concat_ws('|', event_id, aggregate_type, aggregate_id, event_version, "
      "event_type, (extract(epoch FROM event_time) * 1000)::bigint, data, metadata->>'correlationId', "
      "metadata->>'causationId', metadata->>'userId', metadata->>'node'), E'\\n' ORDER BY position, "
      "event_version) FROM events";
  std::string before;
  {
    pqxx::connection c{dsn};
    pqxx::work tx{c};
    tx.exec("CREATE TABLE schema_migrations (version int PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())");
    for (const auto& m : persistence::migrations())
      if (m.version < 7) {
        tx.exec(m.sql);
        tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version,
                       std::string{m.name});
      }
    tx.exec("INSERT INTO events (event_id, aggregate_type, aggregate_id, event_version, event_type, "
            "event_time, data, metadata) SELECT gen_random_uuid(), 'stock', 'M' || (i % 3) || '@w1', "
            "i / 3 + 1, 'stock_adjusted', to_timestamp(1700000000 + i * 0.25), "
            "jsonb_build_object('delta', i), jsonb_build_object('correlationId', 'c' || i, "
            "'causationId', '', 'userId', 'u', 'node', 'n1') FROM generate_series(0, 8) i");
    // the relay had delivered the first four
    tx.exec("UPDATE outbox_progress SET txid = (SELECT txid FROM events WHERE position = 4), "
            "position = 4");
    tx.commit();
    before = scalar(dsn, view_order);
  }
  REQUIRE(persistence::migrate(dsn));
  CHECK(scalar(dsn, view_order) == before);
  CHECK(scalar(dsn, "SELECT count(*) FROM event_batches") == "9");
  CHECK(scalar(dsn, "SELECT count(*) FROM outbox_pending") == "5");
  // the sequence goes on after the migrated rows
  scalar(dsn, "INSERT INTO events (aggregate_type, aggregate_id, event_version, event_type) "
              "VALUES ('stock', 'M0@w1', 4, 'stock_adjusted')");
  CHECK(scalar(dsn, "SELECT max(position) FROM event_batches") == "10");
}

TEST_CASE_FIXTURE(system_fixture, "a batch is written in one transaction and read back exactly") {
  auto b = first_batch("S1", "w1");
  b.hold_changes.push_back({"r1", "w1", 2, now_ms() + 60000, "held"});
  b.after.reserved = 2;
  b.after.available = 8;
  REQUIRE(ask<ok_atom>(store, b));
  auto snap = ask<sku_snapshot>(store, load_sku{"S1"});
  REQUIRE(snap);
  REQUIRE(snap->pairs.size() == 1);
  CHECK(snap->pairs[0].level == b.after);
  REQUIRE(snap->pairs[0].holds.size() == 1);
  CHECK(snap->pairs[0].holds[0].quantity == 2);
  CHECK(std::abs(snap->pairs[0].holds[0].expires_at_ms - b.hold_changes[0].expires_at_ms) <= 1);
  CHECK(scalar(dsn, "SELECT metadata->>'correlationId' FROM events") == "c");
  auto located = ask<reservation_rows>(store, locate_reservation{"r1"});
  REQUIRE(located);
  CHECK(located->sku == "S1");
}

TEST_CASE_FIXTURE(system_fixture, "a stale version conflicts and writes nothing") {
  REQUIRE(ask<ok_atom>(store, first_batch("S1", "w1")));
  auto stale = first_batch("S1", "w1"); // expects version 0 again
  stale.after.on_hand = 99;
  auto r = ask<ok_atom>(store, stale);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::conflict);
  CHECK(scalar(dsn, "SELECT on_hand FROM stock_levels") == "10");
  CHECK(scalar(dsn, "SELECT count(*) FROM events") == "1");
}

TEST_CASE_FIXTURE(system_fixture, "a duplicate event version rolls the whole batch back") {
  REQUIRE(ask<ok_atom>(store, first_batch("S1", "w1")));
  auto dup = first_batch("S1", "w1");
  dup.expected_version = 1;
  dup.after.version = 2;
  dup.after.on_hand = 50; // the event still claims version 1
  auto r = ask<ok_atom>(store, dup);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::conflict);
  CHECK(scalar(dsn, "SELECT on_hand FROM stock_levels") == "10");
}

/// Each part's outcome of a group written by one worker, "ok" or the errc.
std::string outcomes(const group_outcome& out) {
  std::string xs;
  for (auto* v : {&out.stock, &out.entities})
    for (auto& e : *v)
      xs.append(xs.empty() ? "" : ",")
        .append(!e                            ? std::string_view{"ok"}
                : to_errc(e) == errc::fenced ? std::string_view{"fenced"} // to_string: unavailable
                                             : to_string(to_errc(e)));
  return xs;
}

TEST_CASE_FIXTURE(system_fixture, "a group commits many entities in one transaction, each part answered by its own checks") {
  REQUIRE(ask<ok_atom>(store, first_batch("S1", "w1")));
  auto worker = persistence::spawn_pg_worker(sys, {dsn, 1, 5000ms});
  write_group g;
  g.stock.push_back(first_batch("S2", "w1"));
  auto stale = first_batch("S1", "w1"); // expects version 0 again
  stale.after.on_hand = 99;
  g.stock.push_back(stale);
  auto fenced = first_batch("S3", "w1");
  fenced.under = fence{7, 3}; // no lease of shard 7 has epoch 3
  g.stock.push_back(fenced);
  g.entities.push_back(cart_write(0, R"({"items":[]})"));
  auto out = ask<group_outcome>(worker, g);
  REQUIRE(out);
  CHECK(outcomes(*out) == "ok,conflict,fenced,ok");
  CHECK(scalar(dsn, "SELECT on_hand FROM stock_levels WHERE sku = 'S1'") == "10");
  CHECK(scalar(dsn, "SELECT count(*) FROM stock_levels WHERE sku = 'S3'") == "0");
  // One transaction: the new pair's row and the cart's row have the same xmin.
  CHECK(scalar(dsn, "SELECT xmin FROM stock_levels WHERE sku = 'S2'")
        == scalar(dsn, "SELECT xmin FROM entity_state WHERE aggregate_id = 'crt_1'"));
  CHECK(scalar(dsn, "SELECT count(*) FROM events") == "3");
  stop(worker);
}

TEST_CASE_FIXTURE(system_fixture, "a part whose statement fails is answered alone, with its entity's later parts; the others commit") {
  auto worker = persistence::spawn_pg_worker(sys, {dsn, 1, 5000ms});
  write_group g;
  g.stock.push_back(first_batch("S4", "w1"));
  // S5's stream already has an outbox row at version 1 (no level row): its
  // first batch's event row is a unique violation.
  scalar(dsn, "INSERT INTO events (aggregate_type, aggregate_id, event_version, event_type) "
              "VALUES ('stock', 'S5@w1', 1, 'stock_adjusted')");
  g.stock.push_back(first_batch("S5", "w1"));
  auto next = first_batch("S5", "w1"); // depends on the failed one
  next.expected_version = 1;
  next.after.version = 2;
  next.events[0].event_version = 2;
  g.stock.push_back(next);
  g.stock.push_back(first_batch("S6", "w1"));
  auto out = ask<group_outcome>(worker, g);
  REQUIRE(out);
  CHECK(outcomes(*out) == "ok,conflict,conflict,ok");
  CHECK(scalar(dsn, "SELECT string_agg(sku, ',' ORDER BY sku) FROM stock_levels") == "S4,S6");
  CHECK(scalar(dsn, "SELECT count(*) FROM events") == "3");
  stop(worker);
}

TEST_CASE_FIXTURE(system_fixture, "a group's batches of many pairs, two of one pair, commit in order with their events and holds") {
  REQUIRE(ask<ok_atom>(store, first_batch("S7", "w1")));
  REQUIRE(ask<ok_atom>(store, first_batch("S8", "w1")));
  auto worker = persistence::spawn_pg_worker(sys, {dsn, 1, 5000ms});
  auto reserve = [](const std::string& sku, int64_t version, const std::string& rsv) {
    stock_batch b;
    b.expected_version = version;
    b.after = stock_level{sku, "w1", 10, version, 0, 10 - version, 3, version + 1, 1};
    b.events.push_back(domain_event{new_uuid(), "stock_reserved", sku + "@w1", "stock",
                                    version + 1, now_ms(), R"({"quantity":1})", "c", "", "u", "n"});
    b.hold_changes.push_back({rsv, "w1", 1, now_ms() + 60000, "held", "u"});
    return b;
  };
  write_group g;
  g.stock = {reserve("S7", 1, "r71"), reserve("S8", 1, "r81"), reserve("S7", 2, "r72")};
  auto out = ask<group_outcome>(worker, g);
  REQUIRE(out);
  CHECK(outcomes(*out) == "ok,ok,ok");
  CHECK(scalar(dsn, "SELECT version || '/' || reserved FROM stock_levels WHERE sku = 'S7'") == "3/2");
  CHECK(scalar(dsn, "SELECT version || '/' || reserved FROM stock_levels WHERE sku = 'S8'") == "2/1");
  CHECK(scalar(dsn, "SELECT string_agg(event_version::text, ',' ORDER BY position, event_version) FROM events "
                    "WHERE aggregate_id = 'S7@w1'") == "1,2,3");
  CHECK(scalar(dsn, "SELECT string_agg(reservation_id, ',' ORDER BY reservation_id) FROM stock_holds "
                    "WHERE status = 'held'") == "r71,r72,r81");
  // A stale part of a later group is refused alone.
  write_group h;
  h.stock = {reserve("S7", 1, "stale"), reserve("S8", 2, "r82")};
  out = ask<group_outcome>(worker, h);
  REQUIRE(out);
  CHECK(outcomes(*out) == "conflict,ok");
  stop(worker);
}

TEST_CASE_FIXTURE(system_fixture, "a restarted SKU actor recovers levels, holds and expiries exactly") {
  auto sku = actors::spawn_sku(sys, "S1", store, {});
  REQUIRE(on_pair<stock_result>(sku, "w1", push_stock_level{10, 1, true, 2, "u"}));
  REQUIRE(on_pair<stock_result>(sku, "w2", push_stock_level{5, 1, false, 0, "u"}));
  REQUIRE(on_pair<stock_result>(sku, "w1", reserve_stock{"a", 3, now_ms() + 600000, "u"}));
  REQUIRE(on_pair<stock_result>(sku, "w1", reserve_stock{"b", 2, now_ms() + 600000, "u"}));
  REQUIRE(on_pair<stock_result>(sku, "w1", commit_stock{"b", "u"}));
  REQUIRE(ask<reservation>(sku, reserve_any{"c", 6, now_ms() + 600000, "u"}));
  auto before = ask<sku_stock>(sku, get_sku_stock{});
  REQUIRE(before);
  stop(sku);

  auto again = actors::spawn_sku(sys, "S1", store, {});
  auto after = ask<sku_stock>(again, get_sku_stock{});
  REQUIRE(after);
  CHECK(*after == *before);
  auto b = on_pair<hold_view>(again, "w1", get_hold{"b"});
  REQUIRE(b);
  CHECK(b->status == "committed");
  auto c = ask<reservation>(again, get_reservation{"c"});
  REQUIRE(c);
  int64_t total = 0;
  for (auto& a : c->allocations)
    total += a.quantity;
  CHECK(total == 6);
  stop(again);

  // A hold whose expiry passed while no actor ran is released at recovery.
  {
    pqxx::connection conn{dsn};
    pqxx::work tx{conn};
    tx.exec("UPDATE stock_holds SET expires_at = now() - interval '1 second' "
            "WHERE reservation_id = 'a'");
    tx.commit();
  }
  auto third = actors::spawn_sku(sys, "S1", store, {});
  // A push answers only after the expiry batch written before it is durable.
  REQUIRE(on_pair<stock_result>(third, "w1", push_stock_level{10, 2, false, 0, "u"}));
  auto w1 = on_pair<stock_level>(third, "w1", get_stock_level{});
  REQUIRE(w1);
  CHECK(w1->reserved == before->warehouses[0].reserved - 3);
  CHECK(scalar(dsn, "SELECT status FROM stock_holds WHERE reservation_id = 'a'") == "expired");
  CHECK(scalar(dsn, "SELECT reserved FROM stock_levels WHERE warehouse = 'w1'")
        == std::to_string(w1->reserved));
  stop(third);
}

TEST_CASE_FIXTURE(system_fixture, "a dropped connection is reopened; an outage answers unavailable until it ends") {
  REQUIRE(ask<ok_atom>(store, ping_atom_v)); // opens connections
  REQUIRE(ask<ok_atom>(store, ping_atom_v));
  auto admin = [&](const std::string& sql) {
    auto base = server_dsn();
    pqxx::connection c{base};
    pqxx::nontransaction tx{c};
    tx.exec(sql);
  };
  auto name = dsn.substr(dsn.rfind('/') + 1);
  auto kill_sessions = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"
                       + name + "'";
  admin(kill_sessions);
  for (int i = 0; i < 4; ++i) // every worker finds its connection dead and reopens it
    CHECK(ask<sku_snapshot>(store, load_sku{"S1"}));
  admin("ALTER DATABASE " + name + " ALLOW_CONNECTIONS false");
  admin(kill_sessions);
  for (int i = 0; i < 2; ++i) {
    auto r = ask<ok_atom>(store, ping_atom_v);
    REQUIRE_FALSE(r);
    CHECK(to_errc(r.error()) == errc::unavailable);
  }
  auto w = ask<ok_atom>(store, first_batch("S1", "w1"));
  REQUIRE_FALSE(w);
  CHECK(to_errc(w.error()) == errc::unavailable);
  admin("ALTER DATABASE " + name + " ALLOW_CONNECTIONS true");
  // Three failed calls opened the store's breaker: it answers at once for a
  // second, then a probe finds PostgreSQL back and closes it.
  auto back = ask<ok_atom>(store, ping_atom_v);
  for (auto until = std::chrono::steady_clock::now() + 3s;
       !back && std::chrono::steady_clock::now() < until; back = ask<ok_atom>(store, ping_atom_v))
    std::this_thread::sleep_for(20ms); // real time: the breaker's open_timeout passing
  CHECK(back);
  CHECK(ask<ok_atom>(store, first_batch("S1", "w1"))); // nothing was half written
}

TEST_CASE_FIXTURE(system_fixture, "an entity row and its events are written together and read back") {
  CHECK(ask<entity_record>(store, load_entity{"cart", "crt_1"})->version == 0);
  REQUIRE(ask<ok_atom>(store, cart_write(0, R"({"items":[]})")));
  REQUIRE(ask<ok_atom>(store, cart_write(1, R"({"items":[1]})")));
  auto r = ask<entity_record>(store, load_entity{"cart", "crt_1"});
  REQUIRE(r);
  CHECK(r->version == 2);
  CHECK(r->owner == "u1");
  CHECK(r->status == "open");
  CHECK(r->state_json == R"({"items": [1]})"); // jsonb's canonical text
  CHECK(std::abs(r->updated_at_ms - now_ms()) < 10000);
  CHECK(ask<entity_record>(store, load_entity{"order", "crt_1"})->version == 0); // per type
  CHECK(scalar(dsn, "SELECT string_agg(event_type, ',' ORDER BY event_version) FROM events "
                    "WHERE aggregate_type = 'cart'")
        == "cart_created,cart_item_set");
}

TEST_CASE_FIXTURE(system_fixture, "two writers of one entity never both succeed") {
  REQUIRE(ask<ok_atom>(store, cart_write(0, "{}")));
  auto again = ask<ok_atom>(store, cart_write(0, "{}")); // creating it twice
  REQUIRE_FALSE(again);
  CHECK(to_errc(again.error()) == errc::conflict);
  // Two writers both built on version 1, both sent before either answer: one lands.
  int ok = 0;
  int conflicts = 0;
  auto first = self->request(caf::actor_cast<caf::actor>(store), 10s, cart_write(1, "{}"));
  auto second = self->request(caf::actor_cast<caf::actor>(store), 10s, cart_write(1, "{}"));
  for (auto* h : {&first, &second})
    h->receive([&](ok_atom) { ++ok; },
               [&](caf::error& e) { conflicts += to_errc(e) == errc::conflict ? 1 : 0; });
  CHECK(ok == 1);
  CHECK(conflicts == 1);
  // A product may share the cart's id: sequences are per aggregate type.
  auto product = cart_write(0, "{}");
  product.after.aggregate_type = "product";
  product.events[0].aggregate_type = "product";
  REQUIRE(ask<ok_atom>(store, product));
  CHECK(scalar(dsn, "SELECT count(*) FROM events") == "3");
}

TEST_CASE_FIXTURE(system_fixture, "a shipped hold is stored as fulfilled and no longer loaded as live") {
  auto b = first_batch("S1", "w1");
  b.hold_changes.push_back({"r1", "w1", 2, now_ms() + 60000, "committed", "u"});
  b.after.reserved = b.after.committed = 2;
  b.after.available = 8;
  REQUIRE(ask<ok_atom>(store, b));
  stock_batch ship;
  ship.expected_version = 1;
  ship.after = b.after;
  ship.after.version = 2;
  ship.after.on_hand = 8;
  ship.after.reserved = ship.after.committed = 0;
  ship.events.push_back(domain_event{new_uuid(), "stock_fulfilled", "S1@w1", "stock", 2, now_ms(),
                                     "{}", "c", "", "u", "n"});
  ship.hold_changes.push_back({"r1", "w1", 2, now_ms() + 60000, "fulfilled", "u"});
  REQUIRE(ask<ok_atom>(store, ship));
  CHECK(scalar(dsn, "SELECT status FROM stock_holds WHERE reservation_id = 'r1'") == "fulfilled");
  auto snap = ask<sku_snapshot>(store, load_sku{"S1"});
  REQUIRE(snap);
  CHECK(snap->pairs.at(0).holds.empty());
  CHECK(snap->pairs.at(0).level.on_hand == 8);
}

namespace {

/// Runs one statement on the server's maintenance database.
void admin(const std::string& sql) {
  pqxx::connection c{server_dsn()};
  pqxx::nontransaction tx{c};
  tx.exec(sql);
}

/// Polls until a backend of database `db` shows `condition` (a pg_stat_activity
/// WHERE clause), then terminates it; false if none did within 10 s.
bool terminate_when(const std::string& db, const std::string& condition,
                    std::chrono::milliseconds patience = 10s) {
  for (auto until = std::chrono::steady_clock::now() + patience;
       std::chrono::steady_clock::now() < until;) {
    auto pid = scalar(server_dsn(), "SELECT pid FROM pg_stat_activity WHERE datname = '" + db
                                      + "' AND " + condition + " LIMIT 1");
    if (!pid.empty()) {
      admin("SELECT pg_terminate_backend(" + pid + ")");
      return true;
    }
    std::this_thread::sleep_for(5ms); // real time: waiting for another process
  }
  return false;
}

} // namespace

TEST_CASE_FIXTURE(system_fixture, "a write whose connection is cut after it committed is answered committed; one cut before is retried") {
  auto db = dsn.substr(dsn.rfind('/') + 1);
  // A synchronous standby that never comes: COMMIT writes locally, then waits;
  // terminating the backend then leaves the transaction committed while the
  // client only sees its connection break.
  scalar(dsn, "CREATE TABLE probe (x int)"); // before commits wait
  admin("ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
  admin("SELECT pg_reload_conf()");
  struct reset_standby {
    ~reset_standby() {
      admin("ALTER SYSTEM RESET synchronous_standby_names");
      admin("SELECT pg_reload_conf()");
    }
  } reset;
  // The reload is asynchronous, and commits wait only once the checkpointer has
  // reread it too (after new sessions show it): wait until a probe's commit waits.
  bool waits = false;
  for (auto until = std::chrono::steady_clock::now() + 20s;
       !waits && std::chrono::steady_clock::now() < until;) {
    std::thread probe{[&] {
      try {
        scalar(dsn, "INSERT INTO probe VALUES (1)");
      } catch (const std::exception&) { // terminated while it waited
      }
    }};
    waits = terminate_when(db, "wait_event = 'SyncRep'", 300ms);
    probe.join();
  }
  REQUIRE(waits);
  auto worker = persistence::spawn_pg_worker(sys, {dsn, 1, 5000ms});
  REQUIRE(ask<ok_atom>(worker, ping_atom_v));
  for (auto skus : {std::vector<std::string>{"D1"}, std::vector<std::string>{"D2", "D3"}}) {
    CAPTURE(skus.size());
    write_group g;
    for (auto& sku : skus)
      g.stock.push_back(first_batch(sku, "w1"));
    bool cut = false;
    std::thread killer{[&] { cut = terminate_when(db, "wait_event = 'SyncRep'"); }};
    auto out = ask<group_outcome>(worker, g);
    killer.join();
    CHECK(cut);
    REQUIRE(out);
    CHECK(outcomes(*out) == (skus.size() == 1 ? "ok" : "ok,ok")); // was: unavailable
    for (auto& sku : skus)
      CHECK(scalar(dsn, "SELECT version FROM stock_levels WHERE sku = '" + sku + "'") == "1");
  }
  admin("ALTER SYSTEM RESET synchronous_standby_names");
  admin("SELECT pg_reload_conf()");
  for (auto until = std::chrono::steady_clock::now() + 10s;
       scalar(dsn, "SHOW synchronous_standby_names") != ""
       && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(5ms);
  // Cut while its statement waits for a row lock: it never ran, so it goes again.
  pqxx::connection locker{dsn};
  pqxx::work lock{locker};
  lock.exec("SELECT 1 FROM stock_levels WHERE sku = 'D1' FOR UPDATE");
  auto next = first_batch("D1", "w1");
  next.expected_version = 1;
  next.after.version = 2;
  next.events[0].event_version = 2;
  write_group g;
  g.stock.push_back(next);
  bool cut = false;
  std::thread killer{[&] {
    cut = terminate_when(db, "wait_event_type = 'Lock'");
    std::this_thread::sleep_for(50ms); // the retry waits on the lock again
    lock.commit();
  }};
  auto out = ask<group_outcome>(worker, g);
  killer.join();
  CHECK(cut);
  REQUIRE(out);
  CHECK(outcomes(*out) == "ok");
  CHECK(scalar(dsn, "SELECT version FROM stock_levels WHERE sku = 'D1'") == "2");
  CHECK(scalar(dsn, "SELECT count(*) FROM events WHERE aggregate_id = 'D1@w1'") == "2");
  stop(worker);
}

TEST_CASE_FIXTURE(system_fixture, "each entity batch is one outbox row; read back, its events are exactly those written, in order") {
  auto three = first_batch("S30", "w1");
  three.events[0].data_json = R"({"on_hand": 10})"; // as jsonb prints it
  for (int64_t v = 2; v <= 3; ++v)
    three.events.push_back(domain_event{new_uuid(), "stock_reserved", "S30@w1", "stock", v,
                                        now_ms() + v, R"({"note": "a \"quoted\" \\ one", "quantity": 1})",
                                        "c" + std::to_string(v), "k", "u,{v}", "n"});
  three.after.version = 3;
  auto worker = persistence::spawn_pg_worker(sys, {dsn, 1, 5000ms});
  write_group g; // one statement for two pairs, one for the cart
  g.stock = {three, first_batch("S31", "w1")};
  g.entities.push_back(cart_write(0, R"({"items":[]})"));
  g.entities[0].events.push_back(domain_event{new_uuid(), "cart_item_set", "crt_1", "cart", 2,
                                              now_ms(), "{}", "c", "", "u1", "n"});
  g.entities[0].after.version = 2;
  auto out = ask<group_outcome>(worker, g);
  REQUIRE(out);
  CHECK(outcomes(*out) == "ok,ok,ok");
  REQUIRE(ask<ok_atom>(store, first_batch("S32", "w1"))); // a lone write's statement
  CHECK(scalar(dsn, "SELECT count(*) FROM event_batches") == "4");
  CHECK(scalar(dsn, "SELECT count(*) FROM events") == "7");
  auto read = [&](const std::string& type, const std::string& id) {
    auto events = ask<std::vector<domain_event>>(store, load_events{type, id});
    REQUIRE(events);
    return *events;
  };
  CHECK(read("stock", "S30@w1") == three.events);
  CHECK(read("cart", "crt_1") == g.entities[0].events);
  CHECK(scalar(dsn, "SELECT string_agg(event_version::text, ',' ORDER BY position, event_version) "
                    "FROM events WHERE aggregate_id = 'S30@w1'") == "1,2,3");
  stop(worker);
}
