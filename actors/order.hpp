#pragma once

#include "protocols/actors.hpp"
#include "cluster/live_feed.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace emporium::actors {

struct order_config {
  std::string node = "local";
  protocols::fence under; ///< the shard epoch its writes are made under
  protocols::entity_resolver resolve; ///< reaches "sku:SKU"
  caf::actor payments;                ///< the payment adapter
  std::chrono::seconds hold_ttl{900}; ///< how long checkout holds last (extended while waiting)
  /// How long an order waits in `pending` for a payment provider before it is
  /// cancelled and its stock released.
  std::chrono::seconds payment_max_wait{1800};
  /// First wait before a queued payment is tried again; it doubles up to
  /// `payment_retry_max`. Also the wait after a store or stock failure.
  std::chrono::milliseconds payment_retry{5000};
  std::chrono::milliseconds payment_retry_max{60000};
  /// Where each durable change is reported to WebSocket subscribers (optional).
  std::shared_ptr<cluster::live_feed> feed;
};

/// An order's state: the fold of its events plus what the saga needs.
struct order_data {
  protocols::order_view view;
  std::string payment_token;   ///< kept in the entity row, never in an event
  std::string shipping_json;
  int64_t holds_expire_at_ms = 0;
  bool reserved = false;       ///< stock_reserved
  bool authorized = false;     ///< payment_authorized
  bool committed = false;      ///< stock_committed
  bool captured = false;       ///< order_paid (captured, then paid)
  bool voided = false;
  bool refunded = false;
  bool released = false;       ///< stock_released (compensation)
  bool fulfilled = false;      ///< order_shipped
  bool restocked = false;      ///< stock_restocked (return)
  int payment_deferrals = 0;
  int64_t deferred_since_ms = 0; ///< first payment_deferred; 0: never
  int64_t retry_at_ms = 0;       ///< next payment attempt while deferred
  /// Set by order_failed, order_cancelled or order_returned: the saga now
  /// undoes what it did instead of going on.
  bool unwinding = false;
  /// The status the order shows once its compensations are durable (failed,
  /// cancelled, returned); until then it keeps the one it had, so a client
  /// that reads a final status finds the stock and the payment undone.
  std::string ending;
  bool operator==(const order_data&) const = default;
};

/// Applies one stored event (the only way state changes, live or replayed).
void apply(order_data& d, const protocols::domain_event& e);

/// The state after `events`, oldest first, with the row's payment token.
order_data replay(const std::string& order_id, const std::vector<protocols::domain_event>& events,
                  const protocols::entity_record& row);

/// Whether nothing is left for the saga to do (no step, no compensation).
bool settled(const order_data& d);

/// Spawns the entity actor of one order ("order:ID"). It recovers by replaying
/// its events, then drives its saga (docs/orders.md) one step at a time, each
/// step's outcome appended as events before the next step. Reads are answered
/// from memory at any time; a cancel that arrives while a step is under way is
/// handled as soon as that step's outcome is durable.
/// - place_order -> order_view (once order_placed is durable; then the saga runs);
/// - get_order -> order_view; get_order_events -> std::vector<domain_event>;
/// - order_action (cancel, ship, deliver, return) -> order_view;
/// - resume_atom: go on with an unfinished saga (startup, timers);
/// - passivate_atom -> bool: true only when settled and idle.
/// `home`: the router hosting it (see leave_when_unused), none in unit tests.
caf::actor spawn_order(caf::actor_system& sys, std::string order_id, protocols::store_actor store,
                       order_config cfg, caf::actor home = {});

} // namespace emporium::actors
