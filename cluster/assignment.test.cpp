#include "cluster/assignment.hpp"
#include "cluster/shard_table.hpp"

#include <doctest/doctest.h>

#include <map>
#include <set>

using namespace emporium;
using namespace emporium::cluster;

namespace {

std::vector<std::string> nodes(int n) {
  std::vector<std::string> out;
  for (int i = 1; i <= n; ++i)
    out.push_back("node-" + std::to_string(i));
  return out;
}

std::map<uint32_t, std::string> owners(const std::vector<std::string>& ns, uint32_t shards) {
  std::map<uint32_t, std::string> out;
  for (uint32_t s = 0; s < shards; ++s)
    out[s] = std::string{owner_of(s, ns)};
  return out;
}

} // namespace

TEST_CASE("the shard of a key is stable, in range and the same for the string and the key") {
  auto k = protocols::sku_key("S1");
  CHECK(shard_of(k, 1024) == shard_of(k, 1024));
  CHECK(shard_of(k, 1024) < 1024);
  CHECK(shard_of(k, 1024) == shard_of(protocols::entity_kind::sku, "S1", 1024));
  CHECK(shard_of(k, 1024) != shard_of(protocols::cart_key("S1"), 1024));
}

TEST_CASE("every shard has exactly one owner, and each node its share") {
  auto ns = nodes(3);
  std::set<uint32_t> seen;
  for (auto& n : ns) {
    auto mine = assigned_to(n, ns, 1024);
    CHECK(mine.size() > 1024 / 3 * 8 / 10); // within 20% of a third
    CHECK(mine.size() < 1024 / 3 * 12 / 10);
    for (auto s : mine)
      CHECK(seen.insert(s).second); // no shard assigned to two nodes
  }
  CHECK(seen.size() == 1024);
  CHECK(assigned_to("not-a-member", ns, 1024).empty());
  CHECK(owner_of(7, {}).empty());
}

TEST_CASE("a join moves only the shards the newcomer takes, about 1/n of them") {
  for (int n = 1; n <= 9; ++n) {
    auto before = owners(nodes(n), 1024);
    auto after = owners(nodes(n + 1), 1024);
    size_t moved = 0;
    for (auto& [s, o] : before)
      if (after[s] != o) {
        ++moved;
        CHECK(after[s] == "node-" + std::to_string(n + 1)); // only to the newcomer
      }
    auto fair = 1024.0 / (n + 1);
    CHECK(moved > fair * 0.7);
    CHECK(moved < fair * 1.3);
  }
}

TEST_CASE("a leave moves only the leaver's shards") {
  auto ns = nodes(5);
  auto before = owners(ns, 1024);
  auto rest = ns;
  rest.erase(rest.begin() + 2); // node-3 leaves
  auto after = owners(rest, 1024);
  for (auto& [s, o] : before) {
    if (o == "node-3")
      CHECK(after[s] != "node-3");
    else
      CHECK(after[s] == o);
  }
}

TEST_CASE("the order of the member list does not matter") {
  auto ns = nodes(4);
  auto reversed = std::vector<std::string>(ns.rbegin(), ns.rend());
  CHECK(owners(ns, 256) == owners(reversed, 256));
}

TEST_CASE("a held lease is trusted until its local deadline, then not; epochs are per shard") {
  using clock = shard_table::clock;
  shard_table t{16};
  auto t0 = clock::now();
  CHECK_FALSE(t.owned(3, t0));
  CHECK(t.epoch(3) == 0);
  t.hold(3, 7, t0 + std::chrono::milliseconds{1200});
  CHECK(t.owned(3, t0 + std::chrono::milliseconds{1199}));
  CHECK_FALSE(t.owned(3, t0 + std::chrono::milliseconds{1200})); // lapsed: served elsewhere
  CHECK_FALSE(t.owned(4, t0));
  CHECK(t.owned_count(t0) == 1);
  t.drop(3); // handed off: at once
  CHECK_FALSE(t.owned(3, t0));
  CHECK(t.owned_count(t0) == 0);
}
