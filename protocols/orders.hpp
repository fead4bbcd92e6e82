#pragma once

#include "protocols/store.hpp"

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

/// Orders, checkout and payment messages. Orders are entities ("order:ID")
/// whose state is the fold of their events; the payment adapter is a service.
namespace emporium::protocols {

/// Who asks, as the gateway verified it. role: "customer", "warehouse", "ops".
struct caller {
  std::string user_id;
  std::string role;
  std::vector<std::string> warehouses; ///< a warehouse token's scope
  std::string correlation_id;          ///< the request id; events carry it
  bool operator==(const caller&) const = default;
};

struct order_line {
  std::string sku;
  int64_t quantity = 0;
  int64_t unit_price_minor = 0;
  bool operator==(const order_line&) const = default;
};

/// One part of a line's reservation on one warehouse.
struct order_allocation {
  std::string sku;
  std::string reservation_id;
  std::string warehouse;
  int64_t quantity = 0;
  bool operator==(const order_allocation&) const = default;
};

/// An order as the API shows it. status: pending, reserved, paid, shipped,
/// delivered, cancelled, failed, returned. payment_status: none, queued,
/// authorized, declined, captured, voided, refunded.
struct order_view {
  std::string order_id;
  std::string owner;
  std::string cart_id;
  std::string status;
  std::vector<order_line> items;
  std::vector<order_allocation> allocations;
  int64_t total_minor = 0;
  std::string currency;
  std::string payment_method;
  std::string payment_status;
  std::string payment_provider;
  std::string authorization_id;
  std::string reason; ///< why it failed or was cancelled
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  int64_t version = 0; ///< events in the stream; 0: no such order
  bool operator==(const order_view&) const = default;
};

/// Creates the order (from a cart's checkout) and starts its saga -> order_view
/// once `order_placed` is durable. A repeat for the same cart answers the order.
struct place_order {
  std::string cart_id;
  std::string owner;
  std::vector<order_line> items;
  std::string currency;
  std::string payment_method;
  std::string payment_token;
  std::string shipping_json; ///< the request's shipping object, serialized
  std::string correlation_id;
  bool operator==(const place_order&) const = default;
};

/// -> order_view (owner, ops, or a warehouse holding one of its allocations).
struct get_order {
  caller who;
  bool operator==(const get_order&) const = default;
};

/// -> std::vector<domain_event>, oldest first (same access as get_order).
struct get_order_events {
  caller who;
  bool operator==(const get_order_events&) const = default;
};

/// action: "cancel", "ship", "deliver", "return" -> order_view once the
/// transition and its effects are durable; `invalid_state` when the status
/// does not allow it.
struct order_action {
  std::string action;
  caller who;
  bool operator==(const order_action&) const = default;
};

/// Checks the cart out (owner or ops): prices re-checked, order placed, cart
/// closed -> order_view of the new order. `order_id` empty: derived from the
/// cart, so a retry of an unchanged cart names the same order.
struct checkout_cart {
  std::string order_id;
  caller who;
  std::string payment_method;
  std::string payment_token;
  std::string shipping_json;
  bool operator==(const checkout_cart&) const = default;
};

/// One call of the payment-provider protocol. provider empty (authorize only):
/// the adapter picks the primary, or the secondary while the primary's breaker
/// is open. Every other op names the provider that authorized.
struct payment_call {
  std::string op; ///< authorize, capture, void, refund
  std::string provider;
  std::string idempotency_key;
  int64_t amount_minor = 0;
  std::string currency;
  std::string token;
  std::string order_id;
  std::string authorization_id;
  bool operator==(const payment_call&) const = default;
};

/// A provider's definite answer. status: authorized, declined, captured,
/// voided, refunded. Transient trouble after every retry is the error
/// `unavailable` instead.
struct payment_outcome {
  std::string provider;
  std::string status;
  std::string authorization_id;
  bool operator==(const payment_outcome&) const = default;
};

/// Ids of one aggregate type's entities whose work is unfinished, for resuming
/// them where their shard is taken: "order" (a saga or a compensation under
/// way), "sku" (pairs holding stock for live reservations, whose expiry
/// timers live in memory).
struct find_unsettled {
  std::string aggregate_type;
  bool operator==(const find_unsettled&) const = default;
};

struct entity_ids {
  std::vector<std::string> ids;
  bool operator==(const entity_ids&) const = default;
};

/// -> std::vector<domain_event>: one aggregate's events, oldest first.
struct load_events {
  std::string aggregate_type;
  std::string aggregate_id;
  bool operator==(const load_events&) const = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, caller& x) {
  return f(caf::meta::type_name("caller"), x.user_id, x.role, x.warehouses, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_line& x) {
  return f(caf::meta::type_name("order_line"), x.sku, x.quantity, x.unit_price_minor);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_allocation& x) {
  return f(caf::meta::type_name("order_allocation"), x.sku, x.reservation_id, x.warehouse,
           x.quantity);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_view& x) {
  return f(caf::meta::type_name("order_view"), x.order_id, x.owner, x.cart_id, x.status, x.items,
           x.allocations, x.total_minor, x.currency, x.payment_method, x.payment_status,
           x.payment_provider, x.authorization_id, x.reason, x.created_at_ms, x.updated_at_ms,
           x.version);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, place_order& x) {
  return f(caf::meta::type_name("place_order"), x.cart_id, x.owner, x.items, x.currency,
           x.payment_method, x.payment_token, x.shipping_json, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_order& x) {
  return f(caf::meta::type_name("get_order"), x.who);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_order_events& x) {
  return f(caf::meta::type_name("get_order_events"), x.who);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_action& x) {
  return f(caf::meta::type_name("order_action"), x.action, x.who);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, checkout_cart& x) {
  return f(caf::meta::type_name("checkout_cart"), x.order_id, x.who, x.payment_method,
           x.payment_token, x.shipping_json);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, payment_call& x) {
  return f(caf::meta::type_name("payment_call"), x.op, x.provider, x.idempotency_key,
           x.amount_minor, x.currency, x.token, x.order_id, x.authorization_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, payment_outcome& x) {
  return f(caf::meta::type_name("payment_outcome"), x.provider, x.status, x.authorization_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, find_unsettled& x) {
  return f(caf::meta::type_name("find_unsettled"), x.aggregate_type);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entity_ids& x) {
  return f(caf::meta::type_name("entity_ids"), x.ids);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, load_events& x) {
  return f(caf::meta::type_name("load_events"), x.aggregate_type, x.aggregate_id);
}

} // namespace emporium::protocols
