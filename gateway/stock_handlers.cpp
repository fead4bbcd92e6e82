#include "gateway/handlers.hpp"

#include "gateway/server.hpp"
#include "protocols/ids.hpp"
#include "protocols/stock_view.hpp"

#include <openssl/sha.h>

#include <chrono>

namespace emporium::gateway::handlers {

using namespace protocols;

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// Asks pair {warehouse}×{sku} of the route.
template <class T, class Done>
void ask_pair(exchange& x, caf::message cmd, Done done) {
  x.ask_entity<T>("sku:" + x.param("sku"),
                  caf::make_message(pair_atom_v, x.param("warehouse"), std::move(cmd)),
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

std::string derived_id(std::string_view prefix, std::string_view sub, std::string_view key) {
  std::string input{sub};
  input += '\x1f';
  input += key;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out{prefix};
  for (int i = 0; i < 12; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xF];
  }
  return out;
}

void get_pair(exchange& x) {
  if (auto* view = x.stock_view())
    if (auto level = view->find(x.param("warehouse"), x.param("sku")))
      return x.respond(200, level_json(*level));
  ask_pair<stock_level>(x, caf::make_message(get_stock_level{}),
                        [](exchange& x, caf::expected<stock_level> r) {
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
  ask_pair<stock_result>(x, caf::make_message(std::move(cmd)),
                         [](exchange& x, caf::expected<stock_result> r) {
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
  ask_pair<stock_result>(
    x, caf::make_message(protocols::adjust_stock{*delta, reason.value_or(""), x.who().sub, x.request_id()}),
    [](exchange& x, caf::expected<stock_result> r) {
      if (!r)
        return x.fail(r.error());
      x.respond(200, level_json(r->level));
    });
}

void get_sku(exchange& x) {
  x.ask_entity_and_answer<sku_stock>("sku:" + x.param("sku"), caf::make_message(get_sku_stock{}),
                                     200, sku_stock_json);
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
  // With a key, the id is derived from (caller, key): a retry names the same
  // reservation, which the SKU actor then answers as is.
  auto id = key->empty() ? new_id("rsv_") : derived_id("rsv_", who.sub, *key);
  auto expires = now_ms() + ttl.value_or(x.config().default_hold_ttl_s) * 1000;
  if (wh && key->empty()) { // the hot path: straight to the pair
    x.ask_entity<stock_result>(
      "sku:" + *sku,
      caf::make_message(pair_atom_v, *wh,
                        caf::make_message(reserve_stock{id, *qty, expires, who.sub, x.request_id()})),
      [sku = *sku](exchange& x, caf::expected<stock_result> r) {
        if (!r)
          return x.fail(r.error());
        x.respond(201, reservation_json(from_hold(sku, r->hold)));
      });
    return;
  }
  x.ask_entity_and_answer<reservation>(
    "sku:" + *sku,
    caf::make_message(reserve_any{id, *qty, expires, who.sub, x.request_id(), wh.value_or(""),
                                  !key->empty()}),
    201, reservation_json);
}

namespace {

/// GET or DELETE of a reservation: the store says which SKU holds it; final
/// rows (released, expired) are answered from there, live ones by the SKU.
void reservation_by_id(exchange& x, bool release) {
  auto id = x.param("reservation_id");
  x.ask<reservation_rows>(x.store(), caf::make_message(locate_reservation{id}),
                          [id, release](exchange& x, caf::expected<reservation_rows> rows) {
    if (!rows)
      return x.fail(rows.error());
    if (rows->sku.empty())
      return x.fail(errc::not_found, "unknown reservation");
    auto& who = x.who();
    if (!who.is("ops") && rows->holds.front().owner != who.sub)
      return x.fail(errc::forbidden, "reservation belongs to another customer");
    bool live = false;
    for (auto& h : rows->holds)
      live = live || h.status == "held" || h.status == "committed";
    if (!live) { // released or expired: the rows are final
      if (release)
        return x.fail(errc::not_found, "reservation is no longer held");
      reservation r;
      r.reservation_id = id;
      r.sku = rows->sku;
      r.owner = rows->holds.front().owner;
      for (auto& h : rows->holds) {
        r.allocations.push_back({h.warehouse, h.quantity});
        r.expires_at_ms = h.expires_at_ms;
        r.status = h.status;
      }
      return x.respond(200, reservation_json(r));
    }
    auto msg = release ? caf::make_message(protocols::release_reservation{id, who.sub, x.request_id()})
                       : caf::make_message(protocols::get_reservation{id});
    x.ask_entity_and_answer<reservation>("sku:" + rows->sku, std::move(msg), 200, reservation_json);
  });
}

} // namespace

void get_reservation(exchange& x) {
  reservation_by_id(x, false);
}

void release_reservation(exchange& x) {
  reservation_by_id(x, true);
}

} // namespace emporium::gateway::handlers
