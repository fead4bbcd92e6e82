#include "gateway/handlers.hpp"

#include <algorithm>

namespace emporium::gateway::handlers {

namespace p = protocols;

namespace {

bool valid_currency(std::string_view c) {
  return c.size() == 3 && std::all_of(c.begin(), c.end(), [](char x) { return x >= 'A' && x <= 'Z'; });
}

} // namespace

void get_product(exchange& x) {
  x.ask_entity_and_answer(p::product_key(x.param("sku")), p::get_product{}, 200, product_json);
}

void put_product(exchange& x) {
  auto b = x.read_body({"name", "price_minor", "currency", "category"});
  if (!b)
    return;
  auto name = b->string("name", true, false, 200);
  auto price = b->integer("price_minor", true, 0, INT64_MAX / 1000); // room for line totals
  auto currency = b->string("currency", true, false, 3);
  auto category = b->string("category", false, false, 100);
  if (!b->error && name->empty())
    return x.fail(field_error{errc::invalid_field, "name", "name must not be empty"});
  if (!b->error && !valid_currency(*currency))
    return x.fail(field_error{errc::invalid_field, "currency",
                              "currency must be an ISO 4217 code like EUR"});
  if (b->error)
    return x.fail(*b->error);
  p::product value{x.param("sku"), *name, *price, *currency, category.value_or("")};
  x.ask_entity(p::product_key(x.param("sku")), p::put_product{std::move(value), x.who().sub, x.request_id()},
               [](exchange& x, caf::expected<p::product> r) {
    if (!r)
      return x.fail(r.error());
    x.respond(r->version == 1 ? 201 : 200, product_json(*r));
  });
}

} // namespace emporium::gateway::handlers
