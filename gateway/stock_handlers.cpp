#include "gateway/handlers.hpp"

#include "gateway/server.hpp"
#include "protocols/ids.hpp"
#include "cluster/stock_view.hpp"


namespace emporium::gateway::handlers {

using namespace protocols;

namespace {

/// Sends `cmd` to pair {warehouse}×{sku} of the route.
template <class Cmd, class Done>
void ask_pair(exchange& x, Cmd cmd, Done done) {
  x.ask_entity(sku_key(x.param("sku")), at_pair<Cmd>{x.param("warehouse"), std::move(cmd)},
               std::move(done));
}

reservation from_hold(const std::string& sku, const hold_view& h) {
  return reservation{h.reservation_id, sku, {{h.warehouse, h.quantity}}, h.expires_at_ms,
                     h.status, h.owner};
}

} // namespace

std::optional<std::string_view> idempotency_key(exchange& x) {
  auto key = x.header("Idempotency-Key");
  if (key.size() > 255) {
    x.fail(field_error{errc::invalid_field, "Idempotency-Key", "Idempotency-Key is too long"});
    return std::nullopt;
  }
  return key;
}

void get_pair(exchange& x) {
  if (auto* view = x.stock_view())
    if (auto level = view->find(x.param("warehouse"), x.param("sku")))
      return x.respond(200, level_json(*level));
  ask_pair(x, get_stock_level{}, [](exchange& x, caf::expected<stock_level> r) {
    if (!r)
      return x.fail(r.error());
    x.respond(200, level_json(*r));
  });
}

void push_stock(exchange& x) {
  auto b = x.read_body({"on_hand", "seq", "low_stock_threshold"});
  if (!b)
    return;
  auto on_hand = b->integer("on_hand", true, 0, INT64_MAX);
  auto seq = b->integer("seq", true, 0, INT64_MAX);
  auto threshold = b->integer("low_stock_threshold", false, 0, INT64_MAX);
  if (b->error)
    return x.fail(*b->error);
  push_stock_level cmd{*on_hand, *seq, threshold.has_value(), threshold.value_or(0), x.who().sub,
                       x.request_id()};
  ask_pair(x, std::move(cmd), [](exchange& x, caf::expected<stock_result> r) {
    if (!r)
      return x.fail(r.error());
    auto body = level_json(r->level);
    body["applied"] = r->applied;
    x.respond(200, std::move(body));
  });
}

void adjust_stock(exchange& x) {
  auto b = x.read_body({"delta", "reason"});
  if (!b)
    return;
  auto delta = b->integer("delta", true, INT64_MIN, INT64_MAX);
  auto reason = b->string("reason", false, false, 200);
  if (!b->error && *delta == 0)
    return x.fail(field_error{errc::invalid_field, "delta", "delta must not be 0"});
  if (b->error)
    return x.fail(*b->error);
  ask_pair(
    x, protocols::adjust_stock{*delta, reason.value_or(""), x.who().sub, x.request_id()},
    [](exchange& x, caf::expected<stock_result> r) {
      if (!r)
        return x.fail(r.error());
      x.respond(200, level_json(r->level));
    });
}

void get_sku(exchange& x) {
  if (auto* view = x.stock_view())
    if (auto stock = view->find_sku(x.param("sku")))
      return x.respond(200, sku_stock_json(*stock));
  x.ask_entity_and_answer(sku_key(x.param("sku")), get_sku_stock{}, 200, sku_stock_json);
}

void reserve(exchange& x) {
  auto b = x.read_body({"sku", "quantity", "warehouse", "ttl_s"});
  if (!b)
    return;
  auto sku = b->string("sku", true, true);
  auto qty = b->integer("quantity", true, 1, INT64_MAX);
  auto wh = b->string("warehouse", false, true);
  auto ttl = b->integer("ttl_s", false, 1, x.config().max_hold_ttl_s);
  if (b->error)
    return x.fail(*b->error);
  auto key = idempotency_key(x);
  if (!key)
    return;
  auto& who = x.who();
  // The actors make the id (at random, or from the key so that a retry names
  // the same reservation) and the expiry, from their own clock.
  auto ttl_ms = ttl.value_or(x.config().default_hold_ttl_s) * 1000;
  if (wh && key->empty()) { // the hot path: straight to the pair
    reserve_stock cmd{"", *qty, 0, who.sub, x.request_id(), ttl_ms};
    x.ask_entity(sku_key(*sku), at_pair<reserve_stock>{*wh, std::move(cmd)},
                 [sku = *sku](exchange& x, caf::expected<stock_result> r) {
      if (!r)
        return x.fail(r.error());
      x.respond(201, reservation_json(from_hold(sku, r->hold)));
    });
    return;
  }
  reserve_any cmd{"", *qty, 0, who.sub, x.request_id(), wh.value_or(""), !key->empty(), ttl_ms,
                  std::string{*key}};
  x.ask_entity_and_answer(sku_key(*sku), std::move(cmd), 201, reservation_json);
}

void get_reservation(exchange& x) {
  x.ask_entity_and_answer(reservation_key(x.param("reservation_id")),
                          find_reservation{x.who().sub, x.who().is("ops")}, 200, reservation_json);
}

void release_reservation(exchange& x) {
  x.ask_entity_and_answer(reservation_key(x.param("reservation_id")),
                          drop_reservation{x.who().sub, x.who().is("ops"), x.request_id()}, 200,
                          reservation_json);
}

} // namespace emporium::gateway::handlers
