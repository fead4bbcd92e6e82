// Membership and shard leases against real PostgreSQL: one coordinator round
// per cluster_tick, as two node incarnations see it; the fencing of writes.
// Time moves by leases of 0 ms (lapsed at once) instead of sleeps.
#include "persistence/pg_store.hpp"
#include "protocols/errc.hpp"
#include "protocols/type_ids.hpp"
#include "tests/support/pg.hpp"

#include <caf/all.hpp>
#include <doctest/doctest.h>

#include <map>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

struct lease_fixture {
  test::pg_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::string dsn = test::fresh_database();
  membership_actor membership = persistence::spawn_membership(sys, {dsn, 1, 5000ms});
  store_actor store = persistence::spawn_pg_store(sys, {dsn, 1, 5000ms, true});

  ~lease_fixture() {
    self->send_exit(membership, caf::exit_reason::user_shutdown);
    self->send_exit(store, caf::exit_reason::user_shutdown);
  }

  template <class T, class Handle, class Msg>
  caf::expected<T> ask(const Handle& h, Msg msg) {
    return test::ask<T>(self, h, std::move(msg));
  }

  cluster_state round(const std::string& node, const std::string& inc, std::vector<uint32_t> acquire,
                      int64_t lease_ms, std::vector<uint32_t> release = {}) {
    cluster_tick t{member{node, inc, "127.0.0.1:1", "127.0.0.1:2", "up", 0, false, false},
                   std::move(acquire), std::move(release), lease_ms};
    auto r = ask<cluster_state>(membership, t);
    REQUIRE(r);
    return *r;
  }

  /// shard -> (owner incarnation, epoch) of the live leases.
  static std::map<uint32_t, std::pair<std::string, int64_t>> live(const cluster_state& cs) {
    std::map<uint32_t, std::pair<std::string, int64_t>> out;
    for (auto& l : cs.leases)
      if (l.live)
        out[l.shard] = {l.incarnation, l.epoch};
    return out;
  }

  caf::expected<ok_atom> write_under(fence f, int64_t expected_version, const std::string& sku) {
    stock_batch b;
    b.expected_version = expected_version;
    b.after.sku = sku;
    b.after.warehouse = "w1";
    b.after.on_hand = 5;
    b.after.version = expected_version + 1;
    b.under = f;
    return ask<ok_atom>(store, b);
  }
};

} // namespace

TEST_CASE_FIXTURE(lease_fixture, "a free shard is acquired once; a live lease is not taken") {
  auto a = round("a", "a-1", {1, 2, 3}, 60000);
  CHECK(live(a).size() == 3);
  CHECK(live(a)[1] == std::pair<std::string, int64_t>{"a-1", 1});
  auto b = round("b", "b-1", {2, 3, 4}, 60000);
  auto l = live(b);
  CHECK(l[2].first == "a-1"); // still a's
  CHECK(l[3].first == "a-1");
  CHECK(l[4] == std::pair<std::string, int64_t>{"b-1", 1});
  CHECK(b.members.size() == 2);
  for (auto& m : b.members)
    CHECK(m.alive);
}

TEST_CASE_FIXTURE(lease_fixture, "a lapsed lease is taken over with a higher epoch; epochs only grow") {
  round("a", "a-1", {1}, 0); // lapses at once: a paused or dead owner
  auto b = round("b", "b-1", {1}, 60000);
  CHECK(live(b)[1] == std::pair<std::string, int64_t>{"b-1", 2});
  // The old owner's renewal does not bring it back.
  auto a = round("a", "a-1", {}, 60000);
  CHECK(live(a)[1].first == "b-1");
  // Released: the epoch grows again, and the next owner's is higher still.
  round("b", "b-1", {}, 60000, {1});
  auto c = round("c", "c-1", {1}, 60000);
  CHECK(live(c)[1] == std::pair<std::string, int64_t>{"c-1", 4});
}

TEST_CASE_FIXTURE(lease_fixture, "a restarted node does not inherit its old incarnation's leases") {
  round("a", "a-1", {5}, 60000);
  auto again = round("a", "a-2", {5}, 60000);
  CHECK(live(again)[5].first == "a-1"); // waits for the old lease to lapse
}

TEST_CASE_FIXTURE(lease_fixture, "a write under a superseded epoch is fenced and changes nothing") {
  auto s = 9u;
  round("a", "a-1", {s}, 0);
  CHECK(write_under({s, 1}, 0, "F1")); // current epoch: written
  round("b", "b-1", {s}, 60000);       // b takes the shard: epoch 2
  auto stale = write_under({s, 1}, 1, "F1");
  REQUIRE_FALSE(stale);
  CHECK(to_errc(stale.error()) == errc::fenced);
  CHECK(write_under({s, 2}, 1, "F1")); // the new owner's write goes through
  // A store that requires fencing refuses a write without an epoch.
  auto unfenced = write_under({s, 0}, 2, "F1");
  REQUIRE_FALSE(unfenced);
  CHECK(to_errc(unfenced.error()) == errc::fenced);
}

TEST_CASE_FIXTURE(lease_fixture, "drain is asked through the table; an unknown node is not found") {
  round("a", "a-1", {}, 60000);
  CHECK(ask<ok_atom>(membership, request_drain{"a"}));
  auto cs = round("a", "a-1", {}, 60000);
  CHECK(cs.members.at(0).drain_requested);
  auto r = ask<ok_atom>(membership, request_drain{"nobody"});
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::not_found);
}
