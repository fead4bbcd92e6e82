#include "gateway/handlers.hpp"

#include "protocols/ids.hpp"

#include <boost/json/serialize.hpp>

#include <cctype>

namespace emporium::gateway::handlers {

namespace p = protocols;

namespace {

p::entity_key cart_of(exchange& x) {
  return p::cart_key(x.param("cart_id"));
}

template <class Msg>
void cart_command(exchange& x, Msg msg, unsigned status) {
  x.ask_entity_and_answer(cart_of(x), std::move(msg), status, cart_json);
}

bool valid_country(std::string_view c) {
  return c.size() == 2 && std::isupper(static_cast<unsigned char>(c[0]))
         && std::isupper(static_cast<unsigned char>(c[1]));
}

} // namespace

void create_cart(exchange& x) {
  if (!x.body_empty_or_object())
    return;
  auto key = idempotency_key(x);
  if (!key)
    return;
  auto& who = x.who();
  // The id names the entity, so it is made here: from the key, a retry names
  // the same cart (protocols::derived_id), whichever node it reaches.
  auto id = key->empty() ? p::new_id("crt_") : p::derived_id("crt_", who.sub, *key);
  x.ask_entity_and_answer(p::cart_key(id), p::create_cart{who.sub, x.request_id()}, 201, cart_json);
}

void get_cart(exchange& x) {
  cart_command(x, p::get_cart{x.who().sub, x.who().is("ops")}, 200);
}

void set_cart_item(exchange& x) {
  auto b = x.read_body({"quantity"});
  if (!b)
    return;
  auto q = b->integer("quantity", true, 0, INT64_MAX); // the cart checks its line limit
  if (b->error)
    return x.fail(*b->error);
  cart_command(x, p::set_cart_item{x.param("sku"), *q, x.who().sub, x.who().is("ops"), x.request_id()}, 200);
}

void remove_cart_item(exchange& x) {
  cart_command(x, p::set_cart_item{x.param("sku"), 0, x.who().sub, x.who().is("ops"), x.request_id()}, 200);
}

void checkout(exchange& x) {
  auto b = x.read_body({"payment", "shipping"});
  if (!b)
    return;
  auto payment = b->object("payment", true, {"method", "token"});
  std::optional<std::string> method, token;
  if (payment) {
    method = payment->string("method", true, false, 32);
    token = payment->string("token", true, false, 256);
    if (!payment->error && *method != "card")
      payment->error = field_error{errc::invalid_field, "payment.method", "payment.method must be \"card\""};
    if (!payment->error && token->empty())
      payment->error = field_error{errc::invalid_field, "payment.token", "payment.token must not be empty"};
    if (payment->error)
      return x.fail(*payment->error);
  }
  auto shipping = b->object("shipping", true, {});
  if (shipping) {
    if (shipping->fields().size() > 16)
      return x.fail(field_error{errc::invalid_field, "shipping", "shipping has too many fields"});
    for (auto& kv : shipping->fields())
      if (!kv.value().is_string() || kv.value().as_string().size() > 200)
        return x.fail(field_error{errc::invalid_field, "shipping." + std::string{kv.key()},
                                  "shipping fields must be strings of at most 200 characters"});
    auto country = shipping->string("country", true, false, 2);
    if (!shipping->error && !valid_country(*country))
      shipping->error = field_error{errc::invalid_field, "shipping.country",
                                    "shipping.country must be an ISO 3166 code like DE"};
    if (shipping->error)
      return x.fail(*shipping->error);
  }
  if (b->error)
    return x.fail(*b->error);
  if (!idempotency_key(x))
    return;
  // A checkout is idempotent by itself: a cart checks out once, and checking
  // a closed cart out again answers the order it made (docs/api.md).
  auto& who = x.who();
  p::checkout_cart cmd{"", p::caller{who.sub, who.role, who.warehouses, x.request_id()}, *method,
                       *token, json::serialize(shipping->fields())};
  x.ask_entity(cart_of(x), std::move(cmd), [](exchange& x, caf::expected<p::order_view> r) {
    if (!r)
      return x.fail(r.error());
    x.respond(202, {{"order_id", r->order_id}, {"status", r->status}});
  });
}

} // namespace emporium::gateway::handlers
