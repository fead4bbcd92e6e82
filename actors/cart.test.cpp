#include "actors/cart.hpp"
#include "actors/product.hpp"

#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

/// Stands in for the router: "product:SKU" keys are answered from `products`.
caf::behavior catalog_double(caf::event_based_actor*, std::map<std::string, product> products) {
  return {
    [products](route_atom, const entity_key& key, caf::message&) -> caf::result<product> {
      auto i = products.find(key.id);
      if (i == products.end())
        return caf::make_error(errc::not_found, std::string{"unknown product"});
      return i->second;
    },
  };
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

struct cart_fixture : test::with_store_double {
  caf::actor catalog = sys.spawn(catalog_double,
                                 std::map<std::string, product>{
                                   {"S1", {"S1", "Shoe", 1999, "EUR", "shoes", 1}},
                                   {"S2", {"S2", "Sock", 300, "EUR", "socks", 1}},
                                   {"U1", {"U1", "Hat", 500, "USD", "hats", 1}}});

  actors::cart_config config() {
    actors::cart_config cfg;
    cfg.ttl = 1h;
    cfg.line_limit = 5;
    cfg.resolve = [this](const entity_key&) { return catalog; };
    return cfg;
  }

  caf::actor spawn(const std::string& id = "crt_1") {
    auto a = actors::spawn_cart(sys, id, store, config());
    run();
    return a;
  }

  /// Sends, completes every write it causes, returns the answer.
  template <class Msg>
  caf::expected<cart_view> durable(const caf::actor& cart, Msg msg) {
    auto pending = send_request(cart, std::move(msg));
    run();
    complete_all_writes();
    return receive<cart_view>(pending);
  }

  caf::expected<cart_view> set(const caf::actor& cart, const std::string& sku, int64_t qty,
                               const std::string& user = "alice") {
    return durable(cart, set_cart_item{sku, qty, user, false, "req"});
  }
};

} // namespace

TEST_CASE_FIXTURE(cart_fixture, "a cart is created for its owner, durably, and a repeat answers it as is") {
  auto cart = spawn();
  auto pending = send_request(cart, create_cart{"alice", "req-1"});
  run();
  REQUIRE(ctl->waiting == 1); // not answered before the write lands
  complete_write(*this, store);
  auto c = receive<cart_view>(pending);
  REQUIRE(c);
  CHECK(c->owner == "alice");
  CHECK(c->status == "open");
  CHECK(c->version == 1);
  CHECK(ctl->entity_writes.at(0).expected_version == 0);
  CHECK(ctl->entity_writes.at(0).events.at(0).event_type == "cart_created");
  CHECK(ctl->entity_writes.at(0).events.at(0).correlation_id == "req-1");
  auto again = durable(cart, create_cart{"alice", "req-2"});
  REQUIRE(again);
  CHECK(again->version == 1);
  CHECK(ctl->entity_writes.size() == 1);
  auto other = durable(cart, create_cart{"bob", "req-3"});
  REQUIRE_FALSE(other);
  CHECK(to_errc(other.error()) == errc::conflict);
}

TEST_CASE_FIXTURE(cart_fixture, "lines take the product's price; totals are in minor units; 0 removes") {
  auto cart = spawn();
  REQUIRE(durable(cart, create_cart{"alice", ""}));
  auto c = set(cart, "S1", 2);
  REQUIRE(c);
  CHECK(c->currency == "EUR");
  CHECK(c->total_minor == 3998);
  c = set(cart, "S2", 3);
  REQUIRE(c);
  CHECK(c->total_minor == 3998 + 900);
  c = set(cart, "S1", 1); // update in place
  REQUIRE(c);
  REQUIRE(c->items.size() == 2);
  CHECK(c->items[0].sku == "S1");
  CHECK(c->total_minor == 1999 + 900);
  c = set(cart, "S1", 0);
  REQUIRE(c);
  CHECK(c->items.size() == 1);
  CHECK(c->total_minor == 900);
  CHECK(ctl->entity_writes.back().events.at(0).event_type == "cart_item_removed");
  auto writes = ctl->entity_writes.size();
  REQUIRE(set(cart, "S1", 0)); // removing what is not there writes nothing
  CHECK(ctl->entity_writes.size() == writes);
}

TEST_CASE_FIXTURE(cart_fixture, "bad lines are refused and change nothing") {
  auto cart = spawn();
  REQUIRE(durable(cart, create_cart{"alice", ""}));
  REQUIRE(set(cart, "S1", 1));
  auto writes = ctl->entity_writes.size();
  auto over = set(cart, "S1", 6);
  REQUIRE_FALSE(over);
  CHECK(to_errc(over.error()) == errc::invalid_field);
  auto unknown = set(cart, "NOPE", 1);
  REQUIRE_FALSE(unknown);
  CHECK(to_errc(unknown.error()) == errc::not_found);
  auto currency = set(cart, "U1", 1);
  REQUIRE_FALSE(currency);
  CHECK(to_errc(currency.error()) == errc::conflict);
  auto foreign = set(cart, "S2", 1, "mallory");
  REQUIRE_FALSE(foreign);
  CHECK(to_errc(foreign.error()) == errc::forbidden);
  CHECK(ctl->entity_writes.size() == writes);
  auto seen = durable(cart, get_cart{"ops-1", true}); // ops may read
  REQUIRE(seen);
  CHECK(seen->total_minor == 1999);
  auto hidden = durable(cart, get_cart{"mallory", false});
  REQUIRE_FALSE(hidden);
  CHECK(to_errc(hidden.error()) == errc::forbidden);
}

TEST_CASE_FIXTURE(cart_fixture, "a failed write answers the error and leaves the cart as it was") {
  auto cart = spawn();
  REQUIRE(durable(cart, create_cart{"alice", ""}));
  auto pending = send_request(cart, set_cart_item{"S1", 2, "alice", false, ""});
  run();
  complete_write(*this, store, caf::make_error(errc::unavailable));
  auto r = receive<cart_view>(pending);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::unavailable);
  auto c = durable(cart, get_cart{"alice", false});
  REQUIRE(c);
  CHECK(c->items.empty());
  CHECK(c->version == 1);
  REQUIRE(set(cart, "S1", 2)); // and it goes on from durable state
  CHECK(ctl->entity_writes.back().expected_version == 1);
}

TEST_CASE_FIXTURE(cart_fixture, "an untouched cart expires after the TTL; touching it postpones that") {
  auto cart = spawn();
  REQUIRE(durable(cart, create_cart{"alice", ""}));
  advance_time(50min);
  REQUIRE(set(cart, "S1", 1)); // touched: the hour starts again
  advance_time(50min);
  CHECK(ctl->waiting == 0); // not yet
  advance_time(11min);
  REQUIRE(ctl->waiting == 1);
  CHECK(ctl->entity_writes.back().events.at(0).event_type == "cart_expired");
  complete_all_writes();
  auto gone = durable(cart, get_cart{"alice", false});
  REQUIRE_FALSE(gone);
  CHECK(to_errc(gone.error()) == errc::not_found);
}

TEST_CASE_FIXTURE(cart_fixture, "a cart recovered after its TTL passed expires at once; a live one is recovered exactly") {
  ctl->entities["cart/crt_old"] = entity_record{
    "cart", "crt_old", 3, "alice", "open",
    R"({"items":[{"sku":"S1","quantity":2,"unit_price_minor":1999}],"currency":"EUR"})",
    wall_ms() - 2 * 3600 * 1000};
  ctl->entities["cart/crt_live"] = ctl->entities["cart/crt_old"];
  ctl->entities["cart/crt_live"].aggregate_id = "crt_live";
  ctl->entities["cart/crt_live"].updated_at_ms = wall_ms() - 60 * 1000;
  auto old = spawn("crt_old");
  REQUIRE(ctl->waiting == 1);
  CHECK(ctl->entity_writes.back().events.at(0).event_type == "cart_expired");
  CHECK(ctl->entity_writes.back().expected_version == 3);
  complete_all_writes();
  CHECK_FALSE(durable(old, get_cart{"alice", false}));
  auto live = spawn("crt_live");
  auto c = durable(live, get_cart{"alice", false});
  REQUIRE(c);
  CHECK(c->version == 3);
  CHECK(c->total_minor == 3998);
  CHECK(c->currency == "EUR");
}

TEST_CASE_FIXTURE(cart_fixture, "an unknown cart answers not_found and asks its router to stop it") {
  auto cart = actors::spawn_cart(sys, "crt_none", store, config(), caf::actor_cast<caf::actor>(self));
  run();
  auto r = durable(cart, get_cart{"alice", false});
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::not_found);
  // It does not quit by itself (a create may be on its way): it asks home.
  bool asked = false;
  REQUIRE_FALSE(self->mailbox().empty());
  self->receive([&](passivate_atom, const caf::actor_addr& who) { asked = who == cart.address(); });
  CHECK(asked);
  auto again = durable(cart, get_cart{"alice", false});
  CHECK(to_errc(again.error()) == errc::not_found); // still serving
  CHECK(self->mailbox().empty());                  // and asked only once
}

TEST_CASE_FIXTURE(cart_fixture, "a cart whose stored row cannot be read answers unavailable instead of throwing") {
  ctl->entities["cart/crt_bad"] = entity_record{"cart", "crt_bad", 2, "alice", "open", "{\"items\":[1]}", 0};
  auto cart = spawn("crt_bad");
  self->monitor(cart);
  auto r = durable(cart, get_cart{"alice", false});
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::unavailable);
  // It stopped with our error, not with an exception caught by CAF.
  caf::error reason;
  self->receive([&](caf::down_msg& dm) { reason = dm.reason; });
  CHECK(reason.category() == caf::atom("emporium"));
  ctl->entities["cart/crt_worse"] = entity_record{"cart", "crt_worse", 2, "alice", "open", "not json", 0};
  auto worse = spawn("crt_worse");
  auto w = durable(worse, get_cart{"alice", false});
  REQUIRE_FALSE(w);
  CHECK(to_errc(w.error()) == errc::unavailable);
}
