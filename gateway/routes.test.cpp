#include "gateway/auth.hpp"
#include "gateway/handlers.hpp"
#include "gateway/routes.hpp"

#include <doctest/doctest.h>

#include <set>

using namespace emporium;
using namespace emporium::gateway;

namespace {

route_match resolve(method m, std::string_view target) {
  return match_route(route_table(), m, target);
}

} // namespace

TEST_CASE("every route of the contract resolves to its handler") {
  struct expect {
    method m;
    const char* target;
    handler h;
  };
  namespace h = handlers;
  for (auto& e : std::initializer_list<expect>{
         {method::get, "/healthz", h::healthz},
         {method::get, "/readyz", h::readyz},
         {method::get, "/metrics", h::metrics},
         {method::get, "/v1/ws", h::storefront_ws},
         {method::get, "/v1/warehouses/w1/ws?access_token=x", h::warehouse_ws},
         {method::get, "/v1/warehouses/w1/stock/S1", h::get_pair},
         {method::put, "/v1/warehouses/w1/stock/S1", h::push_stock},
         {method::post, "/v1/warehouses/w1/stock/S1/adjust", h::adjust_stock},
         {method::get, "/v1/stock/S1", h::get_sku},
         {method::post, "/v1/reservations", h::reserve},
         {method::get, "/v1/reservations/rsv_1", h::get_reservation},
         {method::delete_, "/v1/reservations/rsv_1", h::release_reservation},
         {method::get, "/v1/products/S1", h::get_product},
         {method::put, "/v1/products/S1", h::put_product},
         {method::post, "/v1/carts", h::create_cart},
         {method::get, "/v1/carts/crt_1", h::get_cart},
         {method::put, "/v1/carts/crt_1/items/S1", h::set_cart_item},
         {method::delete_, "/v1/carts/crt_1/items/S1", h::remove_cart_item},
         {method::post, "/v1/carts/crt_1/checkout", h::checkout},
         {method::get, "/v1/orders/ord_1", h::get_order},
         {method::get, "/v1/orders/ord_1/events", h::get_order_events},
         {method::post, "/v1/orders/ord_1/cancel", h::cancel_order},
         {method::post, "/v1/orders/ord_1/ship", h::ship_order},
         {method::post, "/v1/orders/ord_1/deliver", h::deliver_order},
         {method::post, "/v1/orders/ord_1/return", h::return_order},
       }) {
    CAPTURE(e.target);
    auto m = resolve(e.m, e.target);
    REQUIRE(m.found != nullptr);
    CHECK(static_cast<bool>(m.found->run == e.h));
  }
}

TEST_CASE("parameters are named and percent-decoded; the query is not part of the path") {
  auto m = resolve(method::put, "/v1/warehouses/w%31/stock/S%2D1?x=1");
  REQUIRE(m.found);
  CHECK(m.param("warehouse") == "w1");
  CHECK(m.param("sku") == "S-1");
  CHECK(m.param("nope").empty());
  CHECK(m.pattern == "/v1/warehouses/{warehouse}/stock/{sku}");
  auto doubled = resolve(method::get, "//v1//stock//S1/");
  REQUIRE(doubled.found);
  CHECK(doubled.param("sku") == "S1");
}

TEST_CASE("an unknown path is 404, a known path with another method 405 with Allow") {
  for (auto t : {"/", "/v1", "/v1/nope", "/v1/stock", "/v1/stock/S1/x", "/v1/orders/o/refund",
                 "/v2/stock/S1", "/v1/st%zzck/S1", "/v1/stock/S1%"}) {
    CAPTURE(t);
    auto m = resolve(method::get, t);
    CHECK(m.found == nullptr);
    CHECK(m.error == errc::not_found);
  }
  auto m = resolve(method::other, "/v1/warehouses/w1/stock/S1");
  CHECK(m.found == nullptr);
  CHECK(m.error == errc::method_not_allowed);
  CHECK(m.allow == "GET, PUT");
  CHECK(m.pattern == "/v1/warehouses/{warehouse}/stock/{sku}");
  CHECK(resolve(method::delete_, "/v1/carts").error == errc::method_not_allowed);
  CHECK(resolve(method::get, "/v1/carts").allow == "POST");
}

TEST_CASE("a malformed sku or warehouse is 400 naming it; a malformed entity id is 404") {
  auto sku = resolve(method::get, "/v1/stock/bad%20id");
  CHECK(sku.error == errc::invalid_field);
  CHECK(sku.field == "sku");
  auto wh = resolve(method::get, "/v1/warehouses/-w/stock/S1");
  CHECK(wh.error == errc::invalid_field);
  CHECK(wh.field == "warehouse");
  auto cart = resolve(method::get, "/v1/carts/bad%20id");
  CHECK(cart.error == errc::not_found);
  CHECK(cart.message == "unknown cart");
  CHECK(resolve(method::get, "/v1/orders/%00").message == "unknown order");
  CHECK(resolve(method::get, std::string("/v1/reservations/") + std::string(65, 'a')).message
        == "unknown reservation");
}

TEST_CASE("the table has no two routes of one method and pattern, and every route a rule") {
  std::set<std::pair<int, std::string_view>> seen;
  for (auto& r : route_table()) {
    CHECK(seen.emplace(static_cast<int>(r.verb), r.pattern).second);
    CHECK(static_cast<bool>(r.run != nullptr));
  }
}

// -- admission ---------------------------------------------------------------------------

namespace {

constexpr std::string_view secret = "test-secret";
constexpr int64_t now = 1'800'000'000;

std::string bearer(std::string role, std::vector<std::string> wh = {}, int64_t ttl = 60) {
  principal p{"u-" + role, role, std::move(wh)};
  return "Bearer " + sign_jwt(p, secret, now, ttl);
}

errc refused(gateway::access rule, const std::string& authorization, std::string_view wh = "w1") {
  auto r = admit(rule, authorization, wh, secret, now);
  REQUIRE_FALSE(r);
  return to_errc(r.error());
}

bool admitted(gateway::access rule, const std::string& authorization, std::string_view wh = "w1") {
  return static_cast<bool>(admit(rule, authorization, wh, secret, now));
}

} // namespace

TEST_CASE("public routes need no token; others 401 without one, 403 for the wrong role") {
  CHECK(admitted(gateway::access::anyone, ""));
  CHECK(admitted(gateway::access::anyone, "garbage")); // ignored
  CHECK(admitted(gateway::access::optional_token, ""));
  CHECK(refused(gateway::access::optional_token, "Bearer x.y.z") == errc::unauthenticated);
  CHECK(refused(gateway::access::signed_in, "") == errc::unauthenticated);
  CHECK(refused(gateway::access::signed_in, "Basic abc") == errc::unauthenticated);
  CHECK(refused(gateway::access::signed_in, bearer("customer", {}, -1)) == errc::unauthenticated); // expired
  CHECK(admitted(gateway::access::signed_in, bearer("customer")));
  CHECK(admitted(gateway::access::customer_or_ops, bearer("customer")));
  CHECK(admitted(gateway::access::customer_or_ops, bearer("ops")));
  CHECK(refused(gateway::access::customer_or_ops, bearer("warehouse", {"w1"})) == errc::forbidden);
  CHECK(refused(gateway::access::ops, bearer("customer")) == errc::forbidden);
  CHECK(admitted(gateway::access::ops, bearer("ops")));
}

TEST_CASE("a warehouse token is admitted for its own warehouses only") {
  CHECK(admitted(gateway::access::warehouse_or_ops, bearer("warehouse", {"w1", "w2"}), "w2"));
  CHECK(refused(gateway::access::warehouse_or_ops, bearer("warehouse", {"w1"}), "w9") == errc::forbidden);
  CHECK(refused(gateway::access::warehouse_or_ops, bearer("customer"), "w1") == errc::forbidden);
  CHECK(admitted(gateway::access::warehouse_or_ops, bearer("ops"), "w9"));
}

TEST_CASE("a WebSocket's token may come as the access_token query parameter") {
  CHECK(query_bearer("/v1/ws?a=1&access_token=abc&b=2") == "Bearer abc");
  CHECK(query_bearer("/v1/ws?access_token=") == "Bearer ");
  CHECK(query_bearer("/v1/ws").empty());
  CHECK(query_bearer("/v1/ws?token=abc").empty());
}
