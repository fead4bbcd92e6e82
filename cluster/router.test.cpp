#include "cluster/router.hpp"

#include "actors/cart.hpp"
#include "actors/sku.hpp"
#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

struct router_fixture : test::with_store_double {  int spawned = 0;
  cluster::entity_router router{
    sys, cluster::router_config{1024, 2, 60s},
    {{entity_kind::sku, [this](caf::actor_system& s, const std::string& id, const caf::actor&, const protocols::fence&) {
        ++spawned;
        return actors::spawn_sku(s, id, store, {});
      }}}};

  template <class T>
  caf::expected<T> route(const entity_key& key, caf::message msg) {
    auto pending = send_request(router.shard_for(key), caf::make_message(route_atom_v, key, msg));
    run();
    complete_all_writes();
    return receive<T>(pending);
  }

  /// Lets the router's idle sweep (every 30 s here) find S1 idle for over 60 s.
  void idle_past_passivation() {
    for (int i = 0; i < 3; ++i)
      advance_time(31s);
  }

  /// A command for pair S1 at w1, through the router.
  template <class T, class Cmd>
  caf::expected<T> on_pair(Cmd cmd) {
    return route<T>(sku_key("S1"), caf::make_message(at_pair<Cmd>{"w1", std::move(cmd)}));
  }
};

} // namespace

TEST_CASE("the shard of a key is stable and within range") {
  test::deterministic d;
  cluster::entity_router r{d.sys, {}, {}};
  CHECK(r.shard_of(sku_key("S1")) == r.shard_of(sku_key("S1")));
  CHECK(r.shard_of(sku_key("S1")) < 1024);
  CHECK(r.shard_of(sku_key("S1")) != r.shard_of(sku_key("S2")));
}

TEST_CASE_FIXTURE(router_fixture, "an entity is spawned on first use and reused after") {
  auto pushed = on_pair<stock_result>(push_stock_level{7, 1, false, 0, ""});
  REQUIRE(pushed);
  auto level = on_pair<stock_level>(get_stock_level{});
  REQUIRE(level);
  CHECK(level->on_hand == 7);
  CHECK(spawned == 1);
}

TEST_CASE_FIXTURE(router_fixture, "an unknown kind is not found") {
  auto r = route<stock_level>(cart_key("c1"), caf::make_message(get_stock_level{}));
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::not_found);
}

TEST_CASE_FIXTURE(router_fixture, "an idle entity is passivated and recovered from the store on next use") {
  REQUIRE(on_pair<stock_result>(push_stock_level{7, 1, false, 0, ""}));
  // What the store now holds, as the next instance will load it.
  pair_snapshot p;
  p.level = ctl->batches.back().after;
  ctl->stored = sku_snapshot{"S1", {p}};
  idle_past_passivation();
  auto level = on_pair<stock_level>(get_stock_level{});
  REQUIRE(level);
  CHECK(level->on_hand == 7);
  CHECK(spawned == 2);
}

TEST_CASE_FIXTURE(router_fixture, "an entity holding live reservations is not passivated") {
  REQUIRE(on_pair<stock_result>(push_stock_level{7, 1, false, 0, ""}));
  auto expiry = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count()
                + 3600 * 1000;
  REQUIRE(on_pair<stock_result>(reserve_stock{"r1", 2, expiry, ""}));
  idle_past_passivation();
  auto level = on_pair<stock_level>(get_stock_level{});
  REQUIRE(level);
  CHECK(level->reserved == 2);
  CHECK(spawned == 1);
}

namespace {

/// A router with carts (real cart actors on the store double) and a "stuck"
/// kind whose entity never says whether it may stop.
struct entity_fixture : test::with_store_double {
  int carts_spawned = 0;
  std::shared_ptr<std::vector<caf::response_promise>> unanswered
    = std::make_shared<std::vector<caf::response_promise>>();
  cluster::entity_router router{
    sys, cluster::router_config{1024, 1, 60s},
    {{entity_kind::cart, [this](caf::actor_system& s, const std::string& id, const caf::actor& home, const protocols::fence&) {
        ++carts_spawned;
        return actors::spawn_cart(s, id, store, {}, home);
      }},
     {entity_kind::order, [this](caf::actor_system& s, const std::string&, const caf::actor&, const protocols::fence&) { // "stuck"
        auto held = unanswered;
        return s.spawn([held](caf::event_based_actor* self) -> caf::behavior {
          return {
            [self, held](passivate_atom) {
              held->push_back(self->make_response_promise());
              return held->back();
            },
            [](get_stock_level) { return stock_level{}; },
          };
        });
      }}}};

  template <class Msg>
  auto send_to(const entity_key& key, Msg msg) {
    return send_request(router.shard_for(key),
                        caf::make_message(route_atom_v, key, caf::make_message(std::move(msg))));
  }
};

} // namespace

TEST_CASE_FIXTURE(entity_fixture, "a read of an unknown id does not drop a create queued behind it") {
  auto read = send_to(cart_key("c1"), get_cart{"alice", false});
  auto create = send_to(cart_key("c1"), create_cart{"alice", "req"});
  run();
  complete_all_writes();
  auto missing = receive<cart_view>(read);
  REQUIRE_FALSE(missing);
  CHECK(to_errc(missing.error()) == errc::not_found);
  auto created = receive<cart_view>(create);
  REQUIRE(created);
  CHECK(created->owner == "alice");
  auto again = send_to(cart_key("c1"), get_cart{"alice", false});
  run();
  CHECK(receive<cart_view>(again));
}

TEST_CASE_FIXTURE(entity_fixture, "an entity with nothing stored is stopped by its router, not by itself") {
  auto read = send_to(cart_key("c2"), get_cart{"alice", false});
  run();
  CHECK_FALSE(receive<cart_view>(read));
  // It asked the router, which stopped it: the next use starts a fresh one.
  auto again = send_to(cart_key("c2"), get_cart{"alice", false});
  run();
  CHECK_FALSE(receive<cart_view>(again));
  CHECK(carts_spawned == 2);
}

TEST_CASE_FIXTURE(entity_fixture, "an entity that never says whether it stops serves again, with what waited meanwhile") {
  auto first = send_to(entity_key{entity_kind::order, "x"}, get_stock_level{});
  run();
  REQUIRE(receive<stock_level>(first));
  advance_time(31s);
  advance_time(31s); // idle for 60 s at the sweep: the router asks it to stop
  REQUIRE(unanswered->size() == 1);
  std::vector<decltype(first)> waiting;
  for (int i = 0; i < 1030; ++i)
    waiting.push_back(send_to(entity_key{entity_kind::order, "x"}, get_stock_level{}));
  run();
  // Bounded: beyond 1024 buffered requests, 503 at once.
  size_t refused = 0;
  for (size_t i = 1024; i < waiting.size(); ++i) {
    auto r = receive<stock_level>(waiting[i]);
    REQUIRE_FALSE(r);
    refused += to_errc(r.error()) == errc::unavailable;
  }
  CHECK(refused == 6);
  advance_time(11s); // no answer in time: it serves again
  for (size_t i = 0; i < 1024; ++i)
    CHECK(receive<stock_level>(waiting[i]));
}

namespace {

/// Entities that answer ping, crash on tick (or quit with `quit_with`), and
/// count resume_atom: enough to watch the router supervise them.
struct supervised_fixture : test::deterministic {
  int spawned = 0;
  int resumed = 0;
  caf::error quit_with = caf::make_error(errc::internal, std::string{"injected crash"});
  cluster::entity_factory factory = [this](caf::actor_system& s, const std::string&,
                                           const caf::actor&, const protocols::fence&) {
    ++spawned;
    instances.push_back(s.spawn([this](caf::event_based_actor* self) -> caf::behavior {
      return {
        [](ping_atom) { return ok_atom_v; },
        [this, self](tick_atom) { self->quit(quit_with); },
        [this](resume_atom) { ++resumed; },
        [this, self](handoff_atom) {
          if (busy) // a write under way: asked again
            return false;
          self->quit();
          return true;
        },
      };
    }));
    return instances.back();
  };
  std::vector<caf::actor> instances;
  bool busy = false; ///< the entities refuse a handoff
  cluster::entity_router router{sys, cluster::router_config{1024, 2, 0s},
                                {{entity_kind::cart, factory}, {entity_kind::order, factory}}};

  bool ping(const entity_key& key) {
    auto pending = send_request(router.shard_for(key), caf::make_message(route_atom_v, key,
                                                                         caf::make_message(ping_atom_v)));
    run();
    auto r = receive<ok_atom>(pending);
    if (!r)
      CHECK(to_errc(r.error()) == errc::unavailable);
    return static_cast<bool>(r);
  }

  void crash(const entity_key& key) {
    self->send(router.shard_for(key), route_atom_v, key, caf::make_message(tick_atom_v));
    run();
  }
};

} // namespace

TEST_CASE_FIXTURE(supervised_fixture, "a crashed entity starts again on its next request; crashing again soon holds it broken for a backoff") {
  auto key = cart_key("c1");
  CHECK(ping(key));
  crash(key);
  CHECK(ping(key)); // recovered by a fresh instance
  CHECK(spawned == 2);
  crash(key); // the second crash within stable_after: held for 0.5 .. 1 s
  CHECK_FALSE(ping(key));
  CHECK(spawned == 2); // not respawned in a loop
  advance_time(1s);
  CHECK(ping(key));
  CHECK(spawned == 3);
  crash(key); // third in a row: 1 .. 2 s
  advance_time(900ms);
  CHECK_FALSE(ping(key));
  advance_time(1100ms);
  CHECK(ping(key));
  // Stable for stable_after: the next crash counts as the first again.
  advance_time(61s);
  crash(key);
  CHECK(ping(key));
  CHECK(resumed == 0); // only orders are resumed
}

TEST_CASE_FIXTURE(supervised_fixture, "an order that crashes is restarted at once and resumes; again after its backoff") {
  auto key = order_key("o1");
  CHECK(ping(key));
  crash(key);
  CHECK(spawned == 2); // without any request
  CHECK(resumed == 1);
  crash(key);
  CHECK(spawned == 2);
  advance_time(1s);
  CHECK(spawned == 3);
  CHECK(resumed == 2);
  CHECK(ping(key));
}

TEST_CASE_FIXTURE(supervised_fixture, "quitting for another writer or at shutdown is no crash") {
  quit_with = caf::make_error(errc::conflict, std::string{"another writer"});
  auto key = cart_key("c2");
  for (int i = 0; i < 3; ++i) {
    CHECK(ping(key));
    crash(key);
  }
  CHECK(ping(key));
  CHECK(spawned == 4);
  quit_with = caf::make_error(errc::conflict, std::string{"another writer"});
  crash(order_key("o2")); // spawned by the tick itself, quits: not restarted
  CHECK(spawned == 5);
  CHECK(resumed == 0);
}

TEST_CASE_FIXTURE(supervised_fixture, "a shard actor that crashes is started again after a backoff; its entities stop once idle, the other shard actor's serve on") {
  auto a = cart_key("a");
  auto b = cart_key("b");
  for (int i = 0; router.shard_of(a) % 2 == router.shard_of(b) % 2; ++i)
    b = cart_key("b" + std::to_string(i)); // one key on each of the two shard actors
  CHECK(ping(a));
  CHECK(ping(b));
  busy = true; // a write under way in a's entity: it does not stop yet
  auto before = router.shard_for(a);
  self->send_exit(before, caf::exit_reason::kill);
  run();
  CHECK_FALSE(ping(a)); // unavailable at once: its slot names the dead instance
  CHECK(ping(b));
  advance_time(200ms); // asked (and asked again): refuses
  CHECK(ask<ok_atom>(instances[0], ping_atom_v)); // still finishing its write, answered truly
  busy = false;
  advance_time(100ms); // asked again: stops
  CHECK_FALSE(ask<ok_atom>(instances[0], ping_atom_v));
  CHECK(ask<ok_atom>(instances[1], ping_atom_v));
  CHECK(router.shard_for(a) != before); // restarted within its first backoff
  CHECK(ping(a));
  CHECK(spawned == 3); // a fresh instance for a; b's is the same
  CHECK(ping(b));
  CHECK(spawned == 3);
}

TEST_CASE_FIXTURE(entity_fixture, "a shard actor that crashes answers what it held buffered: unavailable, nothing lost") {
  auto first = send_to(entity_key{entity_kind::order, "x"}, get_stock_level{});
  run();
  REQUIRE(receive<stock_level>(first));
  advance_time(31s);
  advance_time(31s); // the router asks it to stop: requests wait in the router
  REQUIRE(unanswered->size() == 1);
  std::vector<decltype(first)> waiting;
  for (int i = 0; i < 3; ++i)
    waiting.push_back(send_to(entity_key{entity_kind::order, "x"}, get_stock_level{}));
  run();
  self->send(router.shard_for(entity_key{entity_kind::order, "x"}), crash_atom_v); // throws
  run();
  for (auto& w : waiting) {
    auto r = receive<stock_level>(w);
    REQUIRE_FALSE(r);
    CHECK(to_errc(r.error()) == errc::unavailable);
  }
}
