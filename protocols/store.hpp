#pragma once

#include "protocols/cluster.hpp"
#include "protocols/inventory.hpp"

#include <caf/error.hpp>

#include <cstdint>
#include <string>
#include <vector>

/// What actors ask of the persistence layer, and the event envelope every
/// domain event is written in (the outbox relays it to Kafka as is).
namespace emporium::protocols {

/// A domain event in the contract's envelope terms.
struct domain_event {
  std::string event_id;       ///< UUID, lets consumers drop duplicates
  std::string event_type;     ///< past tense, e.g. "stock_reserved"
  std::string aggregate_id;   ///< Kafka key, e.g. "S1@w1" for a stock pair
  std::string aggregate_type; ///< "stock", "cart", "order"
  int64_t event_version = 0;  ///< per-aggregate sequence number (1, 2, ...)
  int64_t event_time_ms = 0;
  std::string data_json; ///< the envelope's "data" object, serialized
  std::string correlation_id;
  std::string causation_id;
  std::string user_id;
  std::string node;
  bool operator==(const domain_event&) const = default;
};

/// The durable state of one pair: level plus its live (held or committed) holds.
struct pair_snapshot {
  stock_level level;
  std::vector<hold_view> holds;
  bool operator==(const pair_snapshot&) const = default;
};

/// One group-commit transaction of one pair: the events, the level after
/// them, and every hold whose row changed. Fails with `fenced` when `under`
/// is no longer the shard's epoch, with `conflict` unless the
/// stored version still equals `expected_version`.
struct stock_batch {
  int64_t expected_version = 0;
  stock_level after;
  std::vector<domain_event> events;
  std::vector<hold_view> hold_changes;
  fence under; ///< the shard epoch it is written under (see protocols/cluster.hpp)
  bool operator==(const stock_batch&) const = default;
};

/// Everything stored for one SKU, for recovery.
struct load_sku {
  std::string sku;
  bool operator==(const load_sku&) const = default;
};

struct sku_snapshot {
  std::string sku;
  std::vector<pair_snapshot> pairs;
  bool operator==(const sku_snapshot&) const = default;
};

/// Finds the SKU and the hold rows of a reservation id (any status).
struct locate_reservation {
  std::string reservation_id;
  bool operator==(const locate_reservation&) const = default;
};

struct reservation_rows {
  std::string sku; ///< empty: unknown reservation
  std::vector<hold_view> holds;
  bool operator==(const reservation_rows&) const = default;
};

/// The stored row of an entity other than a stock pair (product, cart, order):
/// its current state as JSON beside its events. Orders keep their state as the
/// fold of their events and store only owner and status here.
struct entity_record {
  std::string aggregate_type;
  std::string aggregate_id;
  int64_t version = 0; ///< 0: nothing stored
  std::string owner;
  std::string status;
  std::string state_json;
  int64_t updated_at_ms = 0;
  bool operator==(const entity_record&) const = default;
};

/// Writes `after` and appends `events` in one transaction -> ok_atom; fails
/// with `fenced` when `under` is no longer the shard's epoch, with `conflict` unless the stored version equals `expected_version` (0: the
/// entity must not exist yet).
struct entity_write {
  int64_t expected_version = 0;
  entity_record after;
  std::vector<domain_event> events;
  fence under; ///< the shard epoch it is written under
  bool operator==(const entity_write&) const = default;
};

/// -> entity_record (version 0 when nothing is stored).
struct load_entity {
  std::string aggregate_type;
  std::string aggregate_id;
  bool operator==(const load_entity&) const = default;
};

/// Writes of many entities committed in one transaction: the store's group
/// commit, from its front to one worker (persistence-internal). Each part is
/// still version- and epoch-checked on its own; a part's own refusal
/// (conflict, fenced) or failure leaves the others committed.
struct write_group {
  std::vector<stock_batch> stock;
  std::vector<entity_write> entities;
};

/// Per part of a write_group, in its order: no error (committed) or why not.
struct group_outcome {
  std::vector<caf::error> stock;
  std::vector<caf::error> entities;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, domain_event& x) {
  return f(caf::meta::type_name("domain_event"), x.event_id, x.event_type,
           x.aggregate_id, x.aggregate_type, x.event_version, x.event_time_ms,
           x.data_json, x.correlation_id, x.causation_id, x.user_id, x.node);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pair_snapshot& x) {
  return f(caf::meta::type_name("pair_snapshot"), x.level, x.holds);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stock_batch& x) {
  return f(caf::meta::type_name("stock_batch"), x.expected_version, x.after,
           x.events, x.hold_changes, x.under);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, load_sku& x) {
  return f(caf::meta::type_name("load_sku"), x.sku);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sku_snapshot& x) {
  return f(caf::meta::type_name("sku_snapshot"), x.sku, x.pairs);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, locate_reservation& x) {
  return f(caf::meta::type_name("locate_reservation"), x.reservation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, reservation_rows& x) {
  return f(caf::meta::type_name("reservation_rows"), x.sku, x.holds);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entity_record& x) {
  return f(caf::meta::type_name("entity_record"), x.aggregate_type, x.aggregate_id, x.version,
           x.owner, x.status, x.state_json, x.updated_at_ms);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entity_write& x) {
  return f(caf::meta::type_name("entity_write"), x.expected_version, x.after, x.events,
           x.under);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, write_group& x) {
  return f(caf::meta::type_name("write_group"), x.stock, x.entities);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, group_outcome& x) {
  return f(caf::meta::type_name("group_outcome"), x.stock, x.entities);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, load_entity& x) {
  return f(caf::meta::type_name("load_entity"), x.aggregate_type, x.aggregate_id);
}

} // namespace emporium::protocols
