#pragma once

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

/// Inventory messages: commands to a SKU x warehouse pair, its replies, and
/// the SKU-level operations (aggregate view, cross-warehouse reservation).
namespace emporium::protocols {

/// Current state of one SKU x warehouse pair.
struct stock_level {
  std::string sku;
  std::string warehouse;
  int64_t on_hand = 0;
  int64_t reserved = 0;  ///< held + committed
  int64_t committed = 0; ///< part of `reserved` that orders committed
  int64_t available = 0; ///< max(0, on_hand - reserved)
  int64_t low_stock_threshold = 0;
  int64_t version = 0; ///< number of events applied to the pair
  int64_t last_seq = 0; ///< last applied warehouse push seq
  bool operator==(const stock_level&) const = default;
};

/// One hold on one pair. status: "held", "committed", "released", "expired",
/// "fulfilled" (shipped).
struct hold_view {
  std::string reservation_id;
  std::string warehouse;
  int64_t quantity = 0;
  int64_t expires_at_ms = 0; ///< wall clock, ms since the epoch
  std::string status;
  std::string owner; ///< the principal (token sub) that reserved
  bool operator==(const hold_view&) const = default;
};

/// Reply to every mutating pair command.
struct stock_result {
  stock_level level;
  bool applied = true; ///< false: a push with an old seq, or an idempotent repeat
  hold_view hold;      ///< for reserve/release/commit
  bool operator==(const stock_result&) const = default;
};

/// Absolute count from the warehouse; ignored when seq <= last applied seq.
struct push_stock_level {
  int64_t on_hand = 0;
  int64_t seq = 0;
  bool has_threshold = false;
  int64_t low_stock_threshold = 0;
  std::string user_id;
  std::string correlation_id; ///< the request id; events carry it
  bool operator==(const push_stock_level&) const = default;
};

/// Relative change of on_hand (damaged goods, found goods, ...).
struct adjust_stock {
  int64_t delta = 0;
  std::string reason;
  std::string user_id;
  std::string correlation_id; ///< the request id; events carry it
  bool operator==(const adjust_stock&) const = default;
};

/// Holds `quantity` until `expires_at_ms` unless committed or released first.
struct reserve_stock {
  std::string reservation_id;
  int64_t quantity = 0;
  int64_t expires_at_ms = 0;
  std::string user_id;
  std::string correlation_id; ///< the request id; events carry it
  /// Without an id the pair makes one; without an expiry it holds for
  /// ttl_ms from its own clock.
  int64_t ttl_ms = 0;
  bool operator==(const reserve_stock&) const = default;
};

/// Gives a held reservation back. Committed ones refuse with invalid_state.
struct release_stock {
  std::string reservation_id;
  std::string user_id;
  std::string correlation_id; ///< the request id; events carry it
  /// Also a committed hold (an order cancelled after payment): its stock
  /// stops being committed. Without it a committed hold is `invalid_state`.
  bool uncommit = false;
  bool operator==(const release_stock&) const = default;
};

/// Turns a hold into committed stock (orders use it); it no longer expires.
struct commit_stock {
  std::string reservation_id;
  std::string user_id;
  std::string correlation_id; ///< the request id; events carry it
  bool operator==(const commit_stock&) const = default;
};

/// Ships a committed hold: on_hand, reserved and committed all drop by its
/// quantity, the hold ends "fulfilled". A held (uncommitted) hold is
/// `invalid_state`.
struct fulfil_stock {
  std::string reservation_id;
  std::string user_id;
  std::string correlation_id;
  bool operator==(const fulfil_stock&) const = default;
};

/// Moves a held hold's expiry to `expires_at_ms` (later only; an earlier time
/// changes nothing). Orders waiting for a payment provider use it.
struct extend_hold {
  std::string reservation_id;
  int64_t expires_at_ms = 0;
  std::string user_id;
  std::string correlation_id;
  bool operator==(const extend_hold&) const = default;
};

/// The pair's durable level (what PostgreSQL has); with include_pending, the
/// working level that also counts writes not yet committed (for planning).
struct get_stock_level {
  bool include_pending = false;
  bool operator==(const get_stock_level&) const = default;
};

struct get_hold {
  std::string reservation_id;
  bool operator==(const get_hold&) const = default;
};

/// A SKU across its warehouses.
struct sku_stock {
  std::string sku;
  int64_t available = 0;
  std::vector<stock_level> warehouses;
  bool operator==(const sku_stock&) const = default;
};

struct allocation {
  std::string warehouse;
  int64_t quantity = 0;
  bool operator==(const allocation&) const = default;
};

/// A reservation as the API shows it; status "held", "committed",
/// "released" or "expired".
struct reservation {
  std::string reservation_id;
  std::string sku;
  std::vector<allocation> allocations;
  int64_t expires_at_ms = 0;
  std::string status;
  std::string owner;
  bool operator==(const reservation&) const = default;
};

/// Reserve on any of the SKU's warehouses (all or nothing), or only on
/// `warehouse` if set. `idempotent`: the id comes from an Idempotency-Key, so
/// a live reservation with that id is answered as is (409 if it differs).
struct reserve_any {
  std::string reservation_id;
  int64_t quantity = 0;
  int64_t expires_at_ms = 0;
  std::string user_id;
  std::string correlation_id; ///< the request id; events carry it
  std::string warehouse;
  bool idempotent = false;
  /// Without an id the SKU makes one: from (user_id, idempotency_key) when a
  /// key is given (a retry names the same reservation), else at random;
  /// without an expiry it holds for ttl_ms from its own clock.
  int64_t ttl_ms = 0;
  std::string idempotency_key;
  bool operator==(const reserve_any&) const = default;
};

struct get_sku_stock {
  bool operator==(const get_sku_stock&) const = default;
};

struct get_reservation {
  std::string reservation_id;
  bool operator==(const get_reservation&) const = default;
};

struct release_reservation {
  std::string reservation_id;
  std::string user_id;
  std::string correlation_id; ///< the request id; events carry it
  bool operator==(const release_reservation&) const = default;
};

/// To a reservation entity (by id): the reservation as its owner (or ops)
/// sees it, live or final; others get forbidden.
struct find_reservation {
  std::string user_id;
  bool ops = false;
  bool operator==(const find_reservation&) const = default;
};

/// To a reservation entity: release it (owner or ops). not_found when it is
/// no longer held, invalid_state when committed.
struct drop_reservation {
  std::string user_id;
  bool ops = false;
  std::string correlation_id;
  bool operator==(const drop_reservation&) const = default;
};

// -- inspect ------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stock_level& x) {
  return f(caf::meta::type_name("stock_level"), x.sku, x.warehouse, x.on_hand,
           x.reserved, x.committed, x.available, x.low_stock_threshold,
           x.version, x.last_seq);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, hold_view& x) {
  return f(caf::meta::type_name("hold_view"), x.reservation_id, x.warehouse,
           x.quantity, x.expires_at_ms, x.status, x.owner);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stock_result& x) {
  return f(caf::meta::type_name("stock_result"), x.level, x.applied, x.hold);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, push_stock_level& x) {
  return f(caf::meta::type_name("push_stock_level"), x.on_hand, x.seq,
           x.has_threshold, x.low_stock_threshold, x.user_id, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, adjust_stock& x) {
  return f(caf::meta::type_name("adjust_stock"), x.delta, x.reason, x.user_id, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reserve_stock& x) {
  return f(caf::meta::type_name("reserve_stock"), x.reservation_id, x.quantity,
           x.expires_at_ms, x.user_id, x.correlation_id, x.ttl_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, release_stock& x) {
  return f(caf::meta::type_name("release_stock"), x.reservation_id, x.user_id, x.correlation_id,
           x.uncommit);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, fulfil_stock& x) {
  return f(caf::meta::type_name("fulfil_stock"), x.reservation_id, x.user_id, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, extend_hold& x) {
  return f(caf::meta::type_name("extend_hold"), x.reservation_id, x.expires_at_ms, x.user_id,
           x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, commit_stock& x) {
  return f(caf::meta::type_name("commit_stock"), x.reservation_id, x.user_id, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_stock_level& x) {
  return f(caf::meta::type_name("get_stock_level"), x.include_pending);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_hold& x) {
  return f(caf::meta::type_name("get_hold"), x.reservation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sku_stock& x) {
  return f(caf::meta::type_name("sku_stock"), x.sku, x.available, x.warehouses);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, allocation& x) {
  return f(caf::meta::type_name("allocation"), x.warehouse, x.quantity);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reservation& x) {
  return f(caf::meta::type_name("reservation"), x.reservation_id, x.sku,
           x.allocations, x.expires_at_ms, x.status, x.owner);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reserve_any& x) {
  return f(caf::meta::type_name("reserve_any"), x.reservation_id, x.quantity,
           x.expires_at_ms, x.user_id, x.correlation_id, x.warehouse, x.idempotent, x.ttl_ms,
           x.idempotency_key);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_sku_stock&) {
  return f(caf::meta::type_name("get_sku_stock"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_reservation& x) {
  return f(caf::meta::type_name("get_reservation"), x.reservation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, release_reservation& x) {
  return f(caf::meta::type_name("release_reservation"), x.reservation_id,
           x.user_id, x.correlation_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, find_reservation& x) {
  return f(caf::meta::type_name("find_reservation"), x.user_id, x.ops);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, drop_reservation& x) {
  return f(caf::meta::type_name("drop_reservation"), x.user_id, x.ops, x.correlation_id);
}

} // namespace emporium::protocols
