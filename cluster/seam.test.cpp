#include "cluster/seam.hpp"

#include "actors/cart.hpp"
#include "cluster/router.hpp"
#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

/// A router with real carts on the store double, an order kind whose entity
/// never answers, and a product kind whose entity stops when asked.
struct seam_fixture : test::with_store_double {
  cluster::entity_router router{
    sys, cluster::router_config{1024, 2, 0s},
    {{entity_kind::cart,
      [this](caf::actor_system& s, const std::string& id, const caf::actor& home, const protocols::fence&) {
        return actors::spawn_cart(s, id, store, {}, home);
      }},
     {entity_kind::order,
      [](caf::actor_system& s, const std::string&, const caf::actor&, const protocols::fence&) {
        return s.spawn([](caf::event_based_actor* self) -> caf::behavior {
          return {[self](get_order&) { return self->make_response_promise<order_view>(); }};
        });
      }},
     {entity_kind::product,
      [](caf::actor_system& s, const std::string&, const caf::actor&, const protocols::fence&) {
        return s.spawn([](caf::event_based_actor* self) -> caf::behavior {
          return {[self](get_product&) {
            auto rp = self->make_response_promise<product>();
            self->quit(); // stops with the request unanswered
            return rp;
          }};
        });
      }}}};
  entity_resolver resolve = router.resolver();

  /// Asks through the seam from inside an actor; the answer once it came.
  template <class Msg>
  auto ask(entity_key key, Msg msg, caf::timespan deadline) {
    using T = response_of_t<Msg>;
    auto out = std::make_shared<std::optional<caf::expected<T>>>();
    sys.spawn([=, r = resolve](caf::event_based_actor* self) {
      cluster::ask(self, r, key, msg, deadline, [out](caf::expected<T> x) { *out = std::move(x); });
    });
    run();
    return out;
  }
};

} // namespace

TEST_CASE_FIXTURE(seam_fixture, "an entity is asked by key and answers its typed result") {
  auto created = ask(cart_key("c1"), create_cart{"alice", "req"}, 5s);
  complete_all_writes();
  REQUIRE(created->has_value());
  REQUIRE(**created);
  CHECK((**created)->owner == "alice");
  auto read = ask(cart_key("c1"), get_cart{"alice", false}, 5s);
  REQUIRE(read->has_value());
  CHECK((**read)->cart_id == "c1");
}

TEST_CASE_FIXTURE(seam_fixture, "a deadline that passes answers unavailable, not silence") {
  auto r = ask(order_key("o1"), get_order{{"alice", "customer"}}, 2s);
  CHECK_FALSE(r->has_value()); // not yet
  advance_time(1s);
  CHECK_FALSE(r->has_value());
  advance_time(1s);
  REQUIRE(r->has_value());
  CHECK(to_errc((*r)->error()) == errc::unavailable);
}

TEST_CASE_FIXTURE(seam_fixture, "a kind with no entities is not_found") {
  auto r = ask(sku_key("S1"), get_sku_stock{}, 2s);
  REQUIRE(r->has_value());
  CHECK(to_errc((*r)->error()) == errc::not_found);
}

TEST_CASE_FIXTURE(seam_fixture, "an entity that stops mid-request: the deadline answers, the caller never hangs") {
  // CAF 0.17 tells a requester nothing when the promise it waits on is
  // dropped; the deadline is what answers (so every ask has one).
  auto first = ask(product_key("P1"), get_product{}, 3s);
  CHECK_FALSE(first->has_value());
  advance_time(3s);
  REQUIRE(first->has_value());
  CHECK(to_errc((*first)->error()) == errc::unavailable);
}

TEST_CASE_FIXTURE(seam_fixture, "a request queued behind an entity that stops is refused at once") {
  std::shared_ptr<std::optional<caf::expected<product>>> first, second;
  first = std::make_shared<std::optional<caf::expected<product>>>();
  second = std::make_shared<std::optional<caf::expected<product>>>();
  sys.spawn([=, r = resolve](caf::event_based_actor* self) {
    for (auto& out : {first, second})
      cluster::ask(self, r, product_key("P2"), get_product{}, std::chrono::seconds{60},
                   [out](caf::expected<product> x) { *out = std::move(x); });
  });
  run();
  CHECK_FALSE(first->has_value()); // its promise went with the entity: the deadline answers it
  REQUIRE(second->has_value());    // still in the mailbox: bounced when it stopped
  CHECK(to_errc((*second)->error()) == errc::unavailable);
}

TEST_CASE_FIXTURE(seam_fixture, "ask_all gathers every answer in the order asked, errors in their place") {
  auto created = ask(cart_key("c1"), create_cart{"alice", "req"}, 5s);
  complete_all_writes();
  REQUIRE(created->has_value());
  auto out = std::make_shared<std::optional<cluster::answers<cart_view>>>();
  sys.spawn([out, r = resolve](caf::event_based_actor* self) {
    std::vector<std::pair<entity_key, get_cart>> asks{{cart_key("nope"), {"alice", false}},
                                                      {cart_key("c1"), {"alice", false}},
                                                      {cart_key("c1"), {"bob", false}}};
    cluster::ask_all(self, r, std::move(asks), std::chrono::seconds{5},
                     [out](cluster::answers<cart_view> got) { *out = std::move(got); });
  });
  run();
  REQUIRE(out->has_value());
  auto& got = **out;
  REQUIRE(got.size() == 3);
  CHECK(to_errc(got[0].error()) == errc::not_found);
  REQUIRE(got[1]);
  CHECK(got[1]->cart_id == "c1");
  CHECK(to_errc(got[2].error()) == errc::forbidden);
}

TEST_CASE("gather of nothing answers at once with nothing") {
  bool called = false;
  cluster::gather<int>(0, [](size_t) -> caf::response_handle<caf::event_based_actor, caf::message, false> {
    throw std::logic_error{"not asked"};
  }, [&](cluster::answers<int> got) { called = got.empty(); });
  CHECK(called);
}
