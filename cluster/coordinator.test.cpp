// The coordinator on the deterministic scheduler, against an in-memory
// membership table with the SQL's semantics (persistence/pg_store.cpp;
// tests/cluster_pgtest.cpp checks the SQL itself). Time moves only by
// advance_time: the table's clock is the actor clock.
#include "cluster/assignment.hpp"
#include "cluster/coordinator.hpp"
#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t shards = 16;
constexpr auto lease = 1500ms;

struct table_double {
  struct row {
    std::string node, incarnation;
    int64_t epoch = 0;
    caf::actor_clock::time_point expires;
  };
  std::map<std::string, std::pair<member, caf::actor_clock::time_point>> members;
  std::map<uint32_t, row> leases;
  std::set<std::string> partitioned; ///< their rounds get no answer
};

membership_actor::behavior_type table_actor(membership_actor::pointer self,
                                            std::shared_ptr<table_double> t) {
  return {
    [=](cluster_tick& tick) -> caf::result<cluster_state> {
      if (t->partitioned.count(tick.self.id) > 0)
        return self->make_response_promise<cluster_state>(); // never answered: it times out
      auto now = self->clock().now();
      auto ms = std::chrono::milliseconds{tick.lease_ms};
      auto& inc = tick.self.incarnation;
      auto drain = t->members.count(tick.self.id) > 0
                   && t->members[tick.self.id].first.incarnation == inc
                   && t->members[tick.self.id].first.drain_requested;
      t->members[tick.self.id] = {tick.self, now};
      t->members[tick.self.id].first.drain_requested = drain; // as the upsert keeps it
      for (auto s : tick.release)
        if (auto& r = t->leases[s]; r.incarnation == inc)
          r = {"", "", r.epoch + 1, caf::actor_clock::time_point{}};
      for (auto& [s, r] : t->leases)
        if (r.incarnation == inc && r.expires > now)
          r.expires = now + ms;
      for (auto s : tick.acquire) {
        auto i = t->leases.find(s);
        if (i == t->leases.end())
          t->leases[s] = {tick.self.id, inc, 1, now + ms};
        else if (i->second.expires <= now)
          i->second = {tick.self.id, inc, i->second.epoch + 1, now + ms};
      }
      cluster_state out;
      for (auto& [id, m] : t->members) {
        auto x = m.first;
        x.alive = m.second > now - ms;
        out.members.push_back(x);
      }
      for (auto& [s, r] : t->leases)
        out.leases.push_back({s, r.node, r.incarnation, r.epoch, r.expires > now});
      return out;
    },
    [=](request_drain& q) -> caf::result<ok_atom> {
      t->members.at(q.node).first.drain_requested = true;
      return ok_atom_v;
    },
  };
}

struct coordinator_fixture : test::deterministic {
  std::shared_ptr<table_double> db = std::make_shared<table_double>();
  membership_actor membership = sys.spawn(table_actor, db);
  std::map<std::string, std::shared_ptr<cluster::shard_table>> tables;
  std::map<std::string, caf::actor> nodes;
  std::map<uint32_t, int64_t> highest_epoch;
  bool left = false;

  ~coordinator_fixture() {
    for (auto& [id, n] : nodes) // their dialers are linked to them
      caf::anon_send_exit(n, caf::exit_reason::kill);
    run();
  }

  void start(const std::string& id) {
    cluster::coordinator_config c;
    c.self = member{id, id + "-1", "127.0.0.1:1", "127.0.0.1:2", "", 0, false, false};
    c.lease = lease;
    c.shards = shards;
    c.on_left = [this] { left = true; };
    c.dial_in_own_thread = false;
    tables[id] = std::make_shared<cluster::shard_table>(shards);
    nodes[id] = cluster::spawn_coordinator(
      sys, c, membership, tables[id], {},
      [](const std::string&, uint16_t) -> caf::expected<caf::actor> {
        return caf::make_error(errc::unavailable); // no transport in this test
      });
    run();
  }

  caf::actor_clock::time_point now() { return sys.clock().now(); }

  /// Moves time in steps of 50 ms, checking at every step that no shard is
  /// served by two nodes and that epochs only grow.
  void step(caf::timespan total) {
    for (auto t = caf::timespan{0}; t < total; t += 50ms) {
      advance_time(50ms);
      for (uint32_t s = 0; s < shards; ++s) {
        int holders = 0;
        for (auto& [id, table] : tables)
          holders += table->owned(s, now()) ? 1 : 0;
        CHECK(holders <= 1);
        if (auto i = db->leases.find(s); i != db->leases.end()) {
          CHECK(i->second.epoch >= highest_epoch[s]);
          highest_epoch[s] = i->second.epoch;
        }
      }
    }
  }

  uint32_t owned(const std::string& id) { return tables[id]->owned_count(now()); }
};

} // namespace

TEST_CASE_FIXTURE(coordinator_fixture, "a lone node takes every shard and is ready") {
  start("a");
  step(1s);
  CHECK(owned("a") == shards);
  CHECK(tables["a"]->ready);
  CHECK(tables["a"]->current_snapshot().status == "up");
}

TEST_CASE_FIXTURE(coordinator_fixture, "a joining node gets its share by handoff, never shared") {
  start("a");
  step(1s);
  start("b");
  step(3s);
  auto b_share = cluster::assigned_to("b", {"a", "b"}, shards);
  CHECK(owned("b") == b_share.size());
  CHECK(owned("a") + owned("b") == shards);
  for (auto s : b_share)
    CHECK(db->leases.at(s).epoch >= 3); // a's epoch 1, released 2, b's 3
  CHECK(tables["a"]->ready);
  CHECK(tables["b"]->ready);
}

TEST_CASE_FIXTURE(coordinator_fixture, "a node that cannot renew stops serving before its lease lapses") {
  start("a");
  step(1s);
  start("b");
  step(3s);
  auto a_share = owned("a");
  REQUIRE(a_share > 0);
  db->partitioned.insert("a");
  step(1300ms); // 4/5 of a lease after its last renewal at the latest
  CHECK(owned("a") == 0);
  CHECK(owned("b") < shards); // the leases have not lapsed yet
  step(2s); // lapsed; b's rounds take them over
  CHECK(owned("b") == shards);
  CHECK_FALSE(tables["a"]->ready);
}

TEST_CASE_FIXTURE(coordinator_fixture, "a drain hands every shard over, then the node has left") {
  start("a");
  step(1s);
  start("b");
  step(3s);
  caf::anon_send(membership, request_drain{"b"});
  step(3s);
  CHECK(owned("b") == 0);
  CHECK(owned("a") == shards);
  CHECK(left);
  CHECK(db->members.at("b").first.status == "left");
}
