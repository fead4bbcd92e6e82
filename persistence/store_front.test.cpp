#include "persistence/store_front.hpp"

#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using emporium::persistence::store_front_config;

namespace {

/// A worker double: keeps each group it gets, and answers the oldest one when
/// the test says so, with what `answer` decides (every part committed unless
/// told otherwise).
struct worker_control {
  std::vector<write_group> groups;
  std::function<group_outcome(const write_group&)> answer = [](const write_group& g) {
    return group_outcome{std::vector<caf::error>(g.stock.size()),
                         std::vector<caf::error>(g.entities.size())};
  };
};

struct worker_state {
  std::deque<std::pair<caf::response_promise, write_group>> open;
};

caf::actor spawn_worker(caf::actor_system& sys, std::shared_ptr<worker_control> ctl) {
  return sys.spawn([ctl](caf::stateful_actor<worker_state>* self) -> caf::behavior {
    return {
      [self, ctl](write_group& g) {
        ctl->groups.push_back(g);
        self->state.open.emplace_back(self->make_response_promise(), std::move(g));
      },
      [self, ctl](ok_atom) {
        auto [rp, g] = std::move(self->state.open.front());
        self->state.open.pop_front();
        rp.deliver(ctl->answer(g));
      },
    };
  });
}

/// A probe double: answers pings at once while `answers`, else never (a
/// hung server).
struct probe_control {
  bool answers = true;
  size_t pings = 0;
};

struct probe_state {
  std::vector<caf::response_promise> unanswered;
};

caf::actor spawn_probe(caf::actor_system& sys, std::shared_ptr<probe_control> ctl) {
  return sys.spawn([ctl](caf::stateful_actor<probe_state>* self) -> caf::behavior {
    return {
      [self, ctl](ping_atom) -> caf::result<ok_atom> {
        ++ctl->pings;
        if (ctl->answers)
          return ok_atom_v;
        self->state.unanswered.push_back(self->make_response_promise());
        return caf::delegated<ok_atom>{};
      },
    };
  });
}

stock_batch batch(const std::string& sku, int64_t expected) {
  stock_batch b;
  b.expected_version = expected;
  b.after.sku = sku;
  b.after.warehouse = "w1";
  b.after.version = expected + 1;
  return b;
}

entity_write cart_write(const std::string& id) {
  entity_write w;
  w.after.aggregate_type = "cart";
  w.after.aggregate_id = id;
  return w;
}

struct front_fixture : test::deterministic {
  std::shared_ptr<worker_control> ctl = std::make_shared<worker_control>();
  caf::actor worker = spawn_worker(sys, ctl);
  store_front_config cfg;
  store_actor front;

  std::shared_ptr<probe_control> probe_ctl = std::make_shared<probe_control>();

  explicit front_fixture(store_front_config c = {}, bool with_probe = false) : cfg(c) {
    front = persistence::spawn_store_front(sys, {worker}, cfg,
                                           with_probe ? spawn_probe(sys, probe_ctl) : caf::actor{});
  }

  /// The worker answers its oldest open group.
  void commit_one() {
    self->send(worker, ok_atom_v);
    run();
  }

  static std::vector<std::string> skus(const write_group& g) {
    std::vector<std::string> out;
    for (auto& b : g.stock)
      out.push_back(b.after.sku + "@" + std::to_string(b.expected_version));
    return out;
  }
};

} // namespace

TEST_CASE("writes of many pairs that arrive while a group commits go as the next group") {
  front_fixture f;
  auto p1 = f.send_request(f.front, batch("P1", 1));
  f.run();
  REQUIRE(f.ctl->groups.size() == 1);
  auto p2 = f.send_request(f.front, batch("P2", 4));
  auto p3 = f.send_request(f.front, batch("P3", 7));
  auto c1 = f.send_request(f.front, cart_write("c1"));
  f.run();
  CHECK(f.ctl->groups.size() == 1); // nothing more while the first is in flight
  f.commit_one();
  REQUIRE(f.ctl->groups.size() == 2);
  CHECK(front_fixture::skus(f.ctl->groups[1]) == std::vector<std::string>{"P2@4", "P3@7"});
  CHECK(f.ctl->groups[1].entities.size() == 1);
  CHECK(f.receive<ok_atom>(p1));
  f.commit_one();
  CHECK(f.receive<ok_atom>(p2));
  CHECK(f.receive<ok_atom>(p3));
  CHECK(f.receive<ok_atom>(c1));
}

TEST_CASE("a part refused or failed is answered alone; the others of its group are committed") {
  front_fixture f;
  f.ctl->answer = [](const write_group& g) {
    group_outcome out{std::vector<caf::error>(g.stock.size()),
                      std::vector<caf::error>(g.entities.size())};
    for (size_t i = 0; i < g.stock.size(); ++i) {
      if (g.stock[i].after.sku == "CONFLICT")
        out.stock[i] = caf::make_error(errc::conflict);
      if (g.stock[i].after.sku == "FENCED")
        out.stock[i] = caf::make_error(errc::fenced);
    }
    return out;
  };
  auto first = f.send_request(f.front, batch("P0", 1));
  f.run();
  auto ok = f.send_request(f.front, batch("P1", 1));
  auto conflict = f.send_request(f.front, batch("CONFLICT", 1));
  auto fenced = f.send_request(f.front, batch("FENCED", 1));
  auto ok2 = f.send_request(f.front, batch("P2", 1));
  f.run();
  f.commit_one();
  f.commit_one();
  CHECK(f.receive<ok_atom>(first));
  CHECK(f.receive<ok_atom>(ok));
  auto c = f.receive<ok_atom>(conflict);
  REQUIRE(!c);
  CHECK(to_errc(c.error()) == errc::conflict);
  auto x = f.receive<ok_atom>(fenced);
  REQUIRE(!x);
  CHECK(to_errc(x.error()) == errc::fenced);
  CHECK(f.receive<ok_atom>(ok2));
}

TEST_CASE("one pair's writes stay in order, in one group or across groups") {
  front_fixture f{store_front_config{2, 100}};
  std::vector<decltype(f.send_request(f.front, batch("P", 0)))> pending;
  for (int64_t v = 0; v < 5; ++v)
    pending.push_back(f.send_request(f.front, batch("P", v)));
  f.run();
  for (int i = 0; i < 3; ++i)
    f.commit_one();
  REQUIRE(f.ctl->groups.size() == 3); // at most 2 parts per group: 1, then 2, then 2
  CHECK(front_fixture::skus(f.ctl->groups[0]) == std::vector<std::string>{"P@0"});
  CHECK(front_fixture::skus(f.ctl->groups[1]) == std::vector<std::string>{"P@1", "P@2"});
  CHECK(front_fixture::skus(f.ctl->groups[2]) == std::vector<std::string>{"P@3", "P@4"});
  for (auto& p : pending)
    CHECK(f.receive<ok_atom>(p));
}

TEST_CASE("beyond the bound of waiting writes a write is refused at once, and nothing is sent") {
  front_fixture f{store_front_config{256, 2}};
  auto in_flight = f.send_request(f.front, batch("P0", 1));
  f.run();
  auto w1 = f.send_request(f.front, batch("P1", 1));
  auto w2 = f.send_request(f.front, cart_write("c1"));
  auto over = f.send_request(f.front, batch("P3", 1));
  f.run();
  auto refused = f.receive<ok_atom>(over); // answered with the first still in flight
  REQUIRE(!refused);
  CHECK(to_errc(refused.error()) == errc::unavailable);
  f.commit_one();
  f.commit_one();
  REQUIRE(f.ctl->groups.size() == 2);
  CHECK(front_fixture::skus(f.ctl->groups[1]) == std::vector<std::string>{"P1@1"});
  CHECK(f.receive<ok_atom>(in_flight));
  CHECK(f.receive<ok_atom>(w1));
  CHECK(f.receive<ok_atom>(w2));
}

TEST_CASE("a worker that goes down answers its group and its waiting writes unavailable") {
  front_fixture f;
  auto in_flight = f.send_request(f.front, batch("P0", 1));
  f.run();
  auto waiting = f.send_request(f.front, batch("P1", 1));
  f.run();
  caf::anon_send_exit(f.worker, caf::exit_reason::kill);
  f.run();
  auto later = f.send_request(f.front, batch("P2", 1)); // its lane has no worker now
  f.run();
  for (auto* p : {&in_flight, &waiting, &later}) {
    auto r = f.receive<ok_atom>(*p);
    REQUIRE(!r);
    CHECK(to_errc(r.error()) == errc::unavailable);
  }
}

TEST_CASE("a crashed worker is started again after a backoff and its lane serves again") {
  using namespace std::chrono_literals;
  store_front_config cfg;
  int respawned = 0;
  front_fixture* fp = nullptr;
  cfg.respawn_worker = [&] {
    ++respawned;
    fp->worker = spawn_worker(fp->sys, fp->ctl);
    return fp->worker;
  };
  cfg.restart = {100ms, 1s, 60s, 3};
  front_fixture f{cfg};
  fp = &f;
  auto in_flight = f.send_request(f.front, batch("P0", 1));
  f.run();
  caf::anon_send_exit(f.worker, caf::exit_reason::kill);
  f.run();
  CHECK(to_errc(f.receive<ok_atom>(in_flight).error()) == errc::unavailable);
  auto refused = f.send_request(f.front, batch("P1", 1)); // during the backoff: refused at once
  f.run();
  CHECK(to_errc(f.receive<ok_atom>(refused).error()) == errc::unavailable);
  CHECK(respawned == 0);
  f.advance_time(100ms);
  CHECK(respawned == 1);
  auto served = f.send_request(f.front, batch("P2", 1));
  f.run();
  REQUIRE(f.ctl->groups.size() == 2); // the new worker got it
  f.commit_one();
  CHECK(f.receive<ok_atom>(served));
  // A shutdown of the worker (not a crash) is not restarted.
  caf::anon_send_exit(f.worker, caf::exit_reason::user_shutdown);
  f.advance_time(2s);
  CHECK(respawned == 1);
}

namespace {

group_outcome all_failed(const write_group& g) {
  auto down = caf::make_error(errc::unavailable);
  return group_outcome{std::vector<caf::error>(g.stock.size(), down),
                       std::vector<caf::error>(g.entities.size(), down)};
}

} // namespace

TEST_CASE("groups that PostgreSQL fails open the breaker: writes and reads are refused at once, nothing is sent") {
  front_fixture f;
  f.ctl->answer = all_failed;
  for (int i = 0; i < 3; ++i) {
    auto w = f.send_request(f.front, batch("P" + std::to_string(i), 1));
    f.run();
    f.commit_one();
    auto r = f.receive<ok_atom>(w);
    REQUIRE(!r);
  }
  REQUIRE(f.ctl->groups.size() == 3);
  auto refused = f.send_request(f.front, batch("P9", 1));
  auto read = f.send_request(f.front, load_sku{"P9"});
  auto ping = f.send_request(f.front, ping_atom_v);
  f.run();
  for (auto* p : {&refused, &read, &ping}) {
    auto r = f.receive<ok_atom>(*p);
    REQUIRE(!r);
    CHECK(to_errc(r.error()) == errc::unavailable);
  }
  CHECK(f.ctl->groups.size() == 3); // nothing reached the worker
  // After open_timeout one write goes through as the probe; its commit closes it.
  f.advance_time(std::chrono::milliseconds{1000});
  f.ctl->answer = worker_control{}.answer;
  auto probe = f.send_request(f.front, batch("P10", 1));
  f.run();
  auto meanwhile = f.send_request(f.front, batch("P11", 1)); // waits behind the probe
  f.run();
  CHECK(f.ctl->groups.size() == 4);
  f.commit_one();
  CHECK(f.receive<ok_atom>(probe));
  REQUIRE(f.ctl->groups.size() == 5); // closed: the next group goes
  f.commit_one();
  CHECK(f.receive<ok_atom>(meanwhile));
}

TEST_CASE("a group that hangs opens the breaker at once, and still gets its definite outcome") {
  front_fixture f;
  for (int i = 0; i < 5; ++i) { // a healthy window: a failure rate would not open it
    auto ok = f.send_request(f.front, batch("P0", i));
    f.run();
    f.commit_one();
    CHECK(f.receive<ok_atom>(ok));
  }
  auto hung = f.send_request(f.front, batch("P1", 1));
  f.run();
  f.advance_time(std::chrono::milliseconds{999});
  auto before = f.send_request(f.front, cart_write("c1")); // waits behind the hung group
  f.run();
  f.advance_time(std::chrono::milliseconds{1}); // in flight for hung_after: open
  auto waiting = f.receive<ok_atom>(before); // the waiting write had not started: refused
  REQUIRE(!waiting);
  CHECK(to_errc(waiting.error()) == errc::unavailable);
  auto refused = f.send_request(f.front, batch("P2", 1));
  f.run();
  auto r = f.receive<ok_atom>(refused);
  REQUIRE(!r);
  CHECK(to_errc(r.error()) == errc::unavailable);
  f.commit_one(); // the server answers after all: the hung group's own outcome
  CHECK(f.receive<ok_atom>(hung));
  CHECK(f.ctl->groups.size() == 6);
}

TEST_CASE("a slow group is not a hung server: the breaker opens only when the probe's ping goes unanswered too") {
  front_fixture f{{}, true};
  using std::chrono::milliseconds;
  auto slow = f.send_request(f.front, batch("P1", 1));
  f.run();
  f.advance_time(milliseconds{500}); // half of hung_after: the probe is asked, and answers
  CHECK(f.probe_ctl->pings == 1);
  f.advance_time(milliseconds{500}); // hung_after: asked again, still closed
  CHECK(f.probe_ctl->pings == 2);
  auto meanwhile = f.send_request(f.front, cart_write("c1"));
  f.run();
  f.advance_time(milliseconds{500}); // and again
  CHECK(f.probe_ctl->pings == 3);
  f.commit_one(); // 1.5 s for one group: slow, and answered
  CHECK(f.receive<ok_atom>(slow));
  f.commit_one();
  CHECK(f.receive<ok_atom>(meanwhile));
  // Now the server hangs: the probe's ping is not answered within the rest of
  // hung_after, and the breaker opens (what waits is refused, never started).
  f.probe_ctl->answers = false;
  auto stuck = f.send_request(f.front, batch("P1", 2));
  f.run();
  auto behind = f.send_request(f.front, cart_write("c2"));
  f.run();
  f.advance_time(milliseconds{500});
  CHECK(f.probe_ctl->pings == 4);
  f.advance_time(milliseconds{499});
  CHECK_FALSE(f.self->mailbox().size()); // nothing answered yet
  f.advance_time(milliseconds{1});
  auto refused = f.receive<ok_atom>(behind);
  REQUIRE_FALSE(refused);
  CHECK(to_errc(refused.error()) == errc::unavailable);
  f.commit_one(); // the hung group's own outcome when the server wakes
  CHECK(f.receive<ok_atom>(stuck));
}

TEST_CASE("readiness asks the probe, which has no group ahead of it") {
  front_fixture f{{}, true};
  auto busy = f.send_request(f.front, batch("P1", 1)); // the worker's group in flight
  f.run();
  auto ready = f.send_request(f.front, ping_atom_v);
  f.run();
  CHECK(f.receive<ok_atom>(ready));
  f.commit_one();
  CHECK(f.receive<ok_atom>(busy));
}

TEST_CASE("a write that waited past start_within is answered unavailable and never reaches PostgreSQL") {
  store_front_config cfg;
  cfg.hung_after = std::chrono::seconds{5}; // slow, not hung: the breaker stays closed
  front_fixture f{cfg};
  auto p1 = f.send_request(f.front, batch("P1", 1));
  f.run();
  auto p2 = f.send_request(f.front, batch("P2", 1)); // waits behind P1's group
  f.run();
  f.advance_time(f.cfg.start_within);
  auto p3 = f.send_request(f.front, batch("P3", 1)); // fresh
  f.run();
  f.commit_one();
  CHECK(f.receive<ok_atom>(p1));
  auto stale = f.receive<ok_atom>(p2);
  REQUIRE_FALSE(stale);
  CHECK(to_errc(stale.error()) == errc::unavailable);
  REQUIRE(f.ctl->groups.size() == 2);
  CHECK(front_fixture::skus(f.ctl->groups[1]) == std::vector<std::string>{"P3@1"}); // P2 never went
  f.commit_one();
  CHECK(f.receive<ok_atom>(p3));
}
