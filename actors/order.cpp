#include "actors/order.hpp"

#include "actors/entity.hpp"
#include "actors/log.hpp"
#include "actors/stock.hpp"
#include "cluster/seam.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <deque>
#include <map>

namespace emporium::actors {

using namespace protocols;
namespace json = boost::json;

namespace {

/// The saga's next move. `wait`: a queued payment's retry time has not come.
enum class step {
  none,
  wait,
  reserve,
  authorize,
  cancel_unpaid,
  commit,
  capture,
  void_payment,
  refund,
  release,
  restock,
};

step next_step(const order_data& d, int64_t now_ms, int64_t max_wait_ms) {
  if (d.view.version == 0)
    return step::none;
  if (d.unwinding) { // compensations, newest step first
    if (d.captured && !d.refunded)
      return step::refund;
    if (d.authorized && !d.captured && !d.voided)
      return step::void_payment;
    if (d.ending == "returned")
      return d.restocked ? step::none : step::restock;
    if (d.reserved && !d.released && !d.fulfilled)
      return step::release;
    return step::none;
  }
  if (!d.reserved)
    return step::reserve;
  if (!d.authorized) {
    if (d.deferred_since_ms != 0 && now_ms >= d.deferred_since_ms + max_wait_ms)
      return step::cancel_unpaid;
    if (d.retry_at_ms > now_ms)
      return step::wait;
    return step::authorize;
  }
  if (!d.committed)
    return step::commit;
  if (!d.captured)
    return step::capture;
  return step::none;
}

} // namespace

void apply(order_data& d, const domain_event& e) {
  auto data = stored_object(e.data_json).value_or(json::object{});
  auto& v = d.view;
  v.version = e.event_version;
  v.updated_at_ms = e.event_time_ms;
  const auto& t = e.event_type;
  if (t == "order_placed") {
    v.order_id = e.aggregate_id;
    v.cart_id = text(data, "cart_id");
    v.owner = text(data, "owner");
    v.currency = text(data, "currency");
    v.total_minor = number(data, "total_minor");
    v.payment_method = text(data, "payment_method");
    v.items.clear();
    for (auto& l : list(data, "items")) {
      if (!l.is_object())
        continue;
      auto& o = l.get_object();
      v.items.push_back({text(o, "sku"), number(o, "quantity"), number(o, "unit_price_minor")});
    }
    if (auto* s = data.if_contains("shipping"))
      d.shipping_json = json::serialize(*s);
    v.status = "pending";
    v.payment_status = "none";
    v.created_at_ms = e.event_time_ms;
  } else if (t == "stock_reserved") {
    v.allocations.clear();
    for (auto& a : list(data, "allocations")) {
      if (!a.is_object())
        continue;
      auto& o = a.get_object();
      v.allocations.push_back({text(o, "sku"), text(o, "reservation_id"), text(o, "warehouse"),
                               number(o, "quantity")});
    }
    d.holds_expire_at_ms = number(data, "expires_at_ms");
    d.reserved = true;
    v.status = "reserved";
  } else if (t == "payment_deferred") {
    ++d.payment_deferrals;
    if (d.deferred_since_ms == 0)
      d.deferred_since_ms = e.event_time_ms;
    d.retry_at_ms = number(data, "retry_at_ms");
    v.status = "pending";
    v.payment_status = "queued";
  } else if (t == "holds_extended") {
    d.holds_expire_at_ms = number(data, "expires_at_ms");
  } else if (t == "payment_authorized") {
    d.authorized = true;
    d.retry_at_ms = 0;
    d.payment_token.clear(); // not needed any more
    v.payment_provider = text(data, "provider");
    v.authorization_id = text(data, "authorization_id");
    v.payment_status = "authorized";
    v.status = "reserved";
  } else if (t == "stock_committed") {
    d.committed = true;
  } else if (t == "order_paid") {
    d.captured = true;
    v.payment_status = "captured";
    v.status = "paid";
  } else if (t == "order_failed" || t == "order_cancelled") {
    d.ending = t == "order_failed" ? "failed" : "cancelled";
    v.reason = text(data, "reason");
    if (v.reason == "payment_declined")
      v.payment_status = "declined";
    d.unwinding = true;
    d.payment_token.clear();
  } else if (t == "payment_voided") {
    d.voided = true;
    v.payment_status = "voided";
  } else if (t == "payment_refunded") {
    d.refunded = true;
    v.payment_status = "refunded";
  } else if (t == "stock_released") {
    d.released = true;
  } else if (t == "order_shipped") {
    d.fulfilled = true;
    v.status = "shipped";
  } else if (t == "order_delivered") {
    v.status = "delivered";
  } else if (t == "order_returned") {
    d.ending = "returned";
    v.reason = text(data, "reason");
    d.unwinding = true;
  } else if (t == "stock_restocked") {
    d.restocked = true;
  }
  if (d.unwinding && next_step(d, 0, INT64_MAX) == step::none)
    v.status = d.ending; // the compensations are durable: the final status
}

order_data replay(const std::string& order_id, const std::vector<domain_event>& events,
                  const entity_record& row) {
  order_data d;
  d.view.order_id = order_id;
  for (auto& e : events)
    apply(d, e);
  if (auto state = stored_object(row.state_json))
    d.payment_token = text(*state, "payment_token");
  return d;
}

bool settled(const order_data& d) {
  return next_step(d, 0, INT64_MAX) == step::none;
}

namespace {

struct order_metrics {
  std::map<std::string, prometheus::Counter*, std::less<>> by_event;

  static order_metrics& get() {
    static order_metrics instance = [] {
      auto& family = prometheus::BuildCounter()
                       .Name("emporium_orders_total")
                       .Help("Order transitions by event (placed, paid, failed, cancelled, ...)")
                       .Register(metrics::registry());
      order_metrics m;
      for (const char* e : {"order_placed", "order_paid", "order_failed", "order_cancelled",
                            "order_shipped", "order_delivered", "order_returned",
                            "payment_deferred"})
        m.by_event[e] = &family.Add({{"event", e}});
      return m;
    }();
    return instance;
  }
};

using view_promise = caf::typed_response_promise<order_view>;

struct order_state {
  static inline const char* name = "order";
  explicit order_state(caf::local_actor* self) : clock(self) {
  }
  caf::actor home;      ///< the router hosting this order
  bool leaving = false; ///< asked home to stop it (nothing stored)
  order_data data;
  std::vector<domain_event> events; ///< the stream, oldest first
  store_actor store;
  order_config cfg;
  actor_wall_clock clock;
  bool busy = false;           ///< a step or an action is under way
  int64_t not_before_ms = 0;   ///< after a transient failure: no step before this
  std::deque<std::pair<order_action, view_promise>> queued; ///< actions waiting for `busy`
  std::vector<view_promise> idle_waiters; ///< answered when the saga stops moving
};

using self_ptr = order_actor::stateful_pointer<order_state>;

struct new_event {
  const char* type;
  json::object data;
};

/// The entity row beside the stream: owner, status, and whether the saga is
/// open (for resuming at startup); the token only until it has been used.
std::string row_json(const order_data& d) {
  json::object o{{"saga", settled(d) ? "settled" : "open"}};
  if (!d.payment_token.empty())
    o["payment_token"] = d.payment_token;
  return json::serialize(o);
}

/// Appends `evs` (folded into a copy first, so live and replayed state agree)
/// in one version-checked write; `done` gets the outcome. The state changes
/// only once the write landed. Not awaited: reads go on meanwhile.
template <class Done>
void write(self_ptr self, std::vector<new_event> evs, const event_origin& origin, Done done) {
  auto& st = self->state;
  auto next = st.data;
  auto now = st.clock.now_ms(self);
  std::vector<domain_event> out;
  for (auto& ev : evs) {
    entity_record at{"order", next.view.order_id, next.view.version + 1, "", "", "", now};
    ev.data["order_id"] = next.view.order_id;
    auto e = entity_event(at, ev.type, ev.data, origin);
    apply(next, e);
    out.push_back(std::move(e));
  }
  entity_write w;
  w.expected_version = st.data.view.version;
  w.under = st.cfg.under;
  w.after = entity_record{"order",           next.view.order_id, next.view.version,
                          next.view.owner,   next.view.status,   row_json(next),
                          now};
  w.events = out;
  self->request(st.store, caf::infinite, std::move(w))
    .then(
      [self, next, out, done](ok_atom) mutable {
        auto& m = order_metrics::get();
        for (auto& e : out) {
          if (auto i = m.by_event.find(e.event_type); i != m.by_event.end())
            i->second->Increment();
          log()->debug("event={} order_id={} version={}", e.event_type, e.aggregate_id,
                      e.event_version);
        }
        self->state.data = std::move(next);
        self->state.events.insert(self->state.events.end(), out.begin(), out.end());
        if (self->state.cfg.feed)
          self->state.cfg.feed->order_changed(self->state.data.view);
        done(caf::error{});
      },
      [self, done](caf::error& err) mutable {
        log()->warn("event=order_write_failed order_id={} error={}",
                    self->state.data.view.order_id, to_string(to_errc(err)));
        done(err);
        if (stops_entity(err))
          self->quit(err); // another writer: recover from PostgreSQL on next use
      });
}

event_origin saga_origin(self_ptr self) {
  auto& st = self->state;
  return {st.data.view.owner, "saga:" + st.data.view.order_id, st.cfg.node};
}

/// Asks each (key, message) through the seam; `done` gets every answer, in
/// order, once all are in.
template <class Msg, class Done>
void gather(self_ptr self, std::vector<std::pair<entity_key, Msg>> asks, Done done) {
  cluster::ask_all(self, self->state.cfg.resolve, std::move(asks), lookup_timeout, std::move(done));
}

/// One command per allocation, to its pair.
template <class Make>
auto per_allocation(self_ptr self, Make make) {
  using cmd = decltype(make(std::declval<const order_allocation&>()));
  std::vector<std::pair<entity_key, at_pair<cmd>>> out;
  for (auto& a : self->state.data.view.allocations)
    out.emplace_back(sku_key(a.sku), at_pair<cmd>{a.warehouse, make(a)});
  return out;
}

bool is_business(errc e) {
  return e == errc::insufficient_stock || e == errc::not_found || e == errc::conflict
         || e == errc::invalid_state || e == errc::invalid_field;
}

void advance(self_ptr self);

/// A step's outcome is durable (or nothing was written): go on.
void step_done(self_ptr self) {
  self->state.busy = false;
  advance(self);
}

/// A dependency was unavailable: nothing changed; try again after a pause.
void retry_later(self_ptr self, const char* what, const caf::error& err) {
  auto& st = self->state;
  log()->warn("event=order_step_deferred order_id={} step={} error={}", st.data.view.order_id,
              what, to_string(to_errc(err)));
  st.not_before_ms = st.clock.now_ms(self) + st.cfg.payment_retry.count();
  step_done(self); // advance() arms the timer for not_before_ms
}

/// Writes `evs` as the outcome of a step, then goes on (or retries later).
void record(self_ptr self, const char* what, std::vector<new_event> evs) {
  write(self, std::move(evs), saga_origin(self), [self, what](caf::error err) {
    if (err && to_errc(err) != errc::conflict)
      return retry_later(self, what, err);
    step_done(self);
  });
}

void fail_order(self_ptr self, std::string reason) {
  record(self, "fail", {{"order_failed", {{"reason", std::move(reason)}}}});
}

std::string reservation_id(const order_data& d, size_t line) {
  return d.view.order_id + "." + std::to_string(line + 1);
}

void reserve(self_ptr self) {
  auto& st = self->state;
  auto& d = st.data;
  auto expires = st.clock.now_ms(self) + st.cfg.hold_ttl.count() * 1000;
  std::vector<std::pair<entity_key, reserve_any>> asks;
  for (size_t i = 0; i < d.view.items.size(); ++i) {
    auto& l = d.view.items[i];
    asks.emplace_back(sku_key(l.sku), reserve_any{reservation_id(d, i), l.quantity, expires,
                                                  d.view.owner, "saga:" + d.view.order_id, "", true});
  }
  gather(self, std::move(asks), [self, expires](std::vector<caf::expected<reservation>> rs) {
    auto& d = self->state.data;
    json::array allocs;
    caf::error first;
    std::string failed_sku;
    std::vector<std::pair<entity_key, release_reservation>> undo;
    for (size_t i = 0; i < rs.size(); ++i) {
      if (!rs[i]) {
        if (!first || (is_business(to_errc(rs[i].error())) && !is_business(to_errc(first)))) {
          first = rs[i].error();
          failed_sku = d.view.items[i].sku;
        }
        continue;
      }
      undo.emplace_back(sku_key(d.view.items[i].sku),
                        release_reservation{reservation_id(d, i), d.view.owner, "saga:" + d.view.order_id});
      for (auto& a : rs[i]->allocations)
        allocs.push_back(json::object{{"sku", rs[i]->sku},
                                      {"reservation_id", rs[i]->reservation_id},
                                      {"warehouse", a.warehouse},
                                      {"quantity", a.quantity}});
    }
    if (!first)
      return record(self, "reserve",
                    {{"stock_reserved", {{"allocations", std::move(allocs)}, {"expires_at_ms", expires}}}});
    if (!is_business(to_errc(first)))
      return retry_later(self, "reserve", first); // the holds stay; a retry finds them
    // All or nothing: give back the lines that were held, then fail.
    auto reason = std::string{to_string(to_errc(first))} + ":" + failed_sku;
    gather(self, std::move(undo), [self, reason](std::vector<caf::expected<reservation>> released) {
      for (auto& r : released)
        if (!r && to_errc(r.error()) != errc::not_found)
          return retry_later(self, "reserve_undo", r.error());
      fail_order(self, reason);
    });
  });
}

payment_call payment(const order_data& d, const char* op) {
  auto& v = d.view;
  return payment_call{op,          v.payment_provider, v.order_id + ":" + op, v.total_minor,
                      v.currency,  d.payment_token,    v.order_id,            v.authorization_id};
}

/// Both providers down: queue the payment, keep the holds alive for the wait.
void defer_payment(self_ptr self, const caf::error& err) {
  auto& st = self->state;
  auto& d = st.data;
  auto now = st.clock.now_ms(self);
  auto attempt = d.payment_deferrals + 1;
  auto delay = std::min<int64_t>(st.cfg.payment_retry_max.count(),
                                 st.cfg.payment_retry.count() << std::min(attempt - 1, 20));
  auto retry_at = now + delay;
  auto since = d.deferred_since_ms != 0 ? d.deferred_since_ms : now;
  // Holds must outlive the wait: until the cancel deadline plus one retry.
  auto hold_until = since + st.cfg.payment_max_wait.count() * 1000 + st.cfg.payment_retry_max.count();
  std::vector<new_event> evs{{"payment_deferred",
                              {{"attempt", attempt},
                               {"retry_at_ms", retry_at},
                               {"reason", std::string{to_string(to_errc(err))}}}}};
  if (d.holds_expire_at_ms >= hold_until)
    return record(self, "defer_payment", std::move(evs)); // advance() arms the retry timer
  auto asks = per_allocation(self, [&](const order_allocation& a) {
    return extend_hold{a.reservation_id, hold_until, d.view.owner, "saga:" + d.view.order_id};
  });
  gather(self, std::move(asks), [self, evs, hold_until](std::vector<caf::expected<stock_result>>) mutable {
    // A hold that could not be extended shows up at commit (then the order fails).
    evs.push_back({"holds_extended", {{"expires_at_ms", hold_until}}});
    record(self, "defer_payment", std::move(evs));
  });
}

void authorize(self_ptr self) {
  auto call = payment(self->state.data, "authorize");
  call.provider.clear(); // the adapter picks by its breakers
  self->request(self->state.cfg.payments, caf::infinite, std::move(call))
    .then(
      [self](payment_outcome& o) {
        if (o.status == "authorized")
          return record(self, "authorize",
                        {{"payment_authorized",
                          {{"provider", o.provider}, {"authorization_id", o.authorization_id}}}});
        fail_order(self, "payment_declined");
      },
      [self](caf::error& err) {
        if (to_errc(err) == errc::unavailable)
          return defer_payment(self, err);
        fail_order(self, "payment_error");
      });
}

/// One pair op per allocation (commit, release, restock), then `done_event`.
/// A hold that is gone (`not_found`) fails the order with `gone_reason`, or,
/// with none, counts as done (released or shipped before a crash).
template <class Cmd>
void pair_step(self_ptr self, const char* what,
               std::vector<std::pair<entity_key, at_pair<Cmd>>> asks, new_event done_event,
               const char* gone_reason) {
  gather(self, std::move(asks), [self, what, done_event, gone_reason](
                                                std::vector<caf::expected<stock_result>> rs) mutable {
    for (auto& r : rs) {
      if (r || (to_errc(r.error()) == errc::not_found && gone_reason == nullptr))
        continue;
      if (to_errc(r.error()) == errc::not_found)
        return fail_order(self, gone_reason);
      return retry_later(self, what, r.error());
    }
    record(self, what, {std::move(done_event)});
  });
}

void provider_step(self_ptr self, const char* op, const char* done_event) {
  self->request(self->state.cfg.payments, caf::infinite, payment(self->state.data, op))
    .then(
      [self, op, done_event](payment_outcome&) {
        record(self, op, {{done_event, {{"provider", self->state.data.view.payment_provider}}}});
      },
      [self, op, done_event](caf::error& err) {
        if (to_errc(err) == errc::unavailable)
          return retry_later(self, op, err);
        // The provider refuses (e.g. it voided an expired authorization itself):
        // nothing is left to undo there; record it and go on.
        log()->error("event=payment_refused order_id={} op={}", self->state.data.view.order_id, op);
        record(self, op, {{done_event, {{"provider", self->state.data.view.payment_provider},
                                        {"refused", true}}}});
      });
}

void run_step(self_ptr self, step s) {
  auto& st = self->state;
  auto& d = st.data;
  auto corr = "saga:" + d.view.order_id;
  auto owner = d.view.owner;
  st.busy = true;
  switch (s) {
    case step::reserve:
      return reserve(self);
    case step::authorize:
      return authorize(self);
    case step::cancel_unpaid:
      return record(self, "cancel_unpaid",
                    {{"order_cancelled", {{"reason", "payment_unavailable"}, {"by", "saga"}}}});
    case step::commit:
      return pair_step(self, "commit", per_allocation(self, [&](const order_allocation& a) {
                         return commit_stock{a.reservation_id, owner, corr};
                       }),
                       {"stock_committed", {}}, "hold_expired");
    case step::capture:
      return provider_step(self, "capture", "order_paid");
    case step::void_payment:
      return provider_step(self, "void", "payment_voided");
    case step::refund:
      return provider_step(self, "refund", "payment_refunded");
    case step::release:
      return pair_step(self, "release", per_allocation(self, [&](const order_allocation& a) {
                         return release_stock{a.reservation_id, owner, corr, true};
                       }),
                       {"stock_released", {}}, nullptr);
    case step::restock:
      return pair_step(self, "restock", per_allocation(self, [&](const order_allocation& a) {
                         return adjust_stock{a.quantity, "order " + d.view.order_id + " returned",
                                             owner, corr};
                       }),
                       {"stock_restocked", {}}, nullptr);
    case step::none:
    case step::wait:
      st.busy = false;
      return;
  }
}

// -- actions -------------------------------------------------------------------------

caf::error refuse_read(const order_data& d, const caller& who) {
  if (d.view.version == 0)
    return caf::make_error(errc::not_found, std::string{"unknown order"});
  if (who.role == "ops" || who.user_id == d.view.owner)
    return {};
  if (who.role == "warehouse")
    for (auto& a : d.view.allocations)
      if (std::find(who.warehouses.begin(), who.warehouses.end(), a.warehouse)
          != who.warehouses.end())
        return {};
  return caf::make_error(errc::forbidden, std::string{"not your order"});
}

caf::error refuse_action(const order_data& d, const order_action& a) {
  if (auto err = refuse_read(d, a.who))
    return err;
  auto& who = a.who;
  bool ops = who.role == "ops";
  bool owner = who.role == "customer" && who.user_id == d.view.owner;
  if (a.action == "cancel" || a.action == "return") {
    if (!ops && !owner)
      return caf::make_error(errc::forbidden, std::string{"only the owner or ops may " + a.action});
  } else if (a.action == "ship") {
    bool covers = who.role == "warehouse";
    for (auto& al : d.view.allocations)
      covers = covers
               && std::find(who.warehouses.begin(), who.warehouses.end(), al.warehouse)
                    != who.warehouses.end();
    if (!ops && !covers)
      return caf::make_error(errc::forbidden,
                             std::string{"only ops or a warehouse holding every allocation may ship"});
  } else if (a.action == "deliver") {
    if (!ops)
      return caf::make_error(errc::forbidden, std::string{"only ops may deliver"});
  } else {
    return caf::make_error(errc::not_found, std::string{"unknown action"});
  }
  return {};
}

/// Whether the status allows `action` now.
caf::error refuse_transition(const order_data& d, const std::string& action) {
  auto& s = d.view.status;
  if (d.unwinding && s != d.ending)
    return caf::make_error(errc::invalid_state, "cannot " + action + " an order while it is being "
                                                  + "undone (it ends as " + d.ending + ")");
  bool ok = (action == "cancel" && (s == "pending" || s == "reserved" || s == "paid"))
            || (action == "ship" && s == "paid") || (action == "deliver" && s == "shipped")
            || (action == "return" && s == "delivered");
  if (ok)
    return {};
  return caf::make_error(errc::invalid_state, std::string{"cannot " + action + " an order that is " + s});
}

void run_action(self_ptr self, order_action a, view_promise rp) {
  auto& st = self->state;
  if (auto err = refuse_transition(st.data, a.action)) {
    rp.deliver(std::move(err));
    return advance(self);
  }
  st.busy = true;
  event_origin origin{a.who.user_id, a.who.correlation_id, st.cfg.node};
  // Cancel and return answer once their compensations are done (or queued).
  auto then_idle = [self, rp](caf::error err) mutable {
    if (err)
      rp.deliver(std::move(err));
    else
      self->state.idle_waiters.push_back(rp);
    step_done(self);
  };
  auto then_answer = [self, rp](caf::error err) mutable {
    if (err)
      rp.deliver(std::move(err));
    else
      rp.deliver(self->state.data.view);
    step_done(self);
  };
  if (a.action == "cancel")
    return write(self, {{"order_cancelled", {{"reason", "cancelled"}, {"by", a.who.user_id}}}},
                 origin, then_idle);
  if (a.action == "return")
    return write(self, {{"order_returned", {{"reason", "returned"}, {"by", a.who.user_id}}}},
                 origin, then_idle);
  if (a.action == "deliver")
    return write(self, {{"order_delivered", {{"by", a.who.user_id}}}}, origin, then_answer);
  // ship: fulfil every allocation, then record it.
  auto asks = per_allocation(self, [&](const order_allocation& al) {
    return fulfil_stock{al.reservation_id, a.who.user_id, a.who.correlation_id};
  });
  gather(self, std::move(asks), [self, origin, rp, then_answer, by = a.who.user_id](
                                                std::vector<caf::expected<stock_result>> rs) mutable {
    for (auto& r : rs)
      if (!r && to_errc(r.error()) != errc::not_found) { // not_found: shipped before a crash
        rp.deliver(r.error());
        return step_done(self);
      }
    write(self, {{"order_shipped", {{"by", by}}}}, origin, then_answer);
  });
}

void advance(self_ptr self) {
  auto& st = self->state;
  if (st.busy || st.data.view.version == 0)
    return;
  if (!st.queued.empty()) { // an action goes before the saga's next step
    auto [a, rp] = std::move(st.queued.front());
    st.queued.pop_front();
    return run_action(self, std::move(a), std::move(rp));
  }
  auto now = st.clock.now_ms(self);
  auto s = now < st.not_before_ms
             ? step::wait
             : next_step(st.data, now, st.cfg.payment_max_wait.count() * 1000);
  if (s == step::wait) { // a queued payment, or a pause after a failure: wake up then
    auto due = std::max(st.not_before_ms, st.data.retry_at_ms);
    self->delayed_send(self, std::chrono::milliseconds{std::max<int64_t>(0, due - now) + 1},
                       resume_atom_v);
  }
  if (s == step::none || s == step::wait) {
    for (auto& rp : st.idle_waiters)
      rp.deliver(st.data.view);
    st.idle_waiters.clear();
    return;
  }
  run_step(self, s);
}

// -- the actor -------------------------------------------------------------------------

order_actor::behavior_type order_behavior(self_ptr self, std::string id, store_actor store, order_config cfg,
                             caf::actor home) {
  auto& st = self->state;
  st.home = std::move(home);
  st.data.view.order_id = id;
  st.store = std::move(store);
  st.cfg = std::move(cfg);
  metrics::actors("order").Increment();
  self->attach_functor([] { metrics::actors("order").Decrement(); });
  // Recover before anything else: the row (for the token) and the stream.
  self->request(st.store, lookup_timeout, load_entity{"order", id})
    .await(
      [self](entity_record& row) {
        auto& st = self->state;
        if (row.version == 0)
          return;
        self->request(st.store, lookup_timeout, load_events{"order", st.data.view.order_id})
          .await(
            [self, row](std::vector<domain_event>& events) {
              auto& st = self->state;
              st.data = replay(st.data.view.order_id, events, row);
              st.events = std::move(events);
              if (st.data.view.version != row.version)
                log()->error("event=order_stream_mismatch order_id={} events={} row={}",
                             st.data.view.order_id, st.data.view.version, row.version);
              advance(self); // resume an unfinished saga
            },
            [self](caf::error& err) { self->quit(err); });
      },
      [self](caf::error& err) {
        log()->warn("event=order_recovery_failed order_id={} error={}",
                    self->state.data.view.order_id, to_string(to_errc(err)));
        self->quit(err);
      });
  auto absent = [self] {
    if (self->state.data.view.version != 0)
      return false;
    leave_when_unused(self, self->state.home, self->state.leaving);
    return true;
  };
  return {
    [self](place_order& cmd) -> caf::result<order_view> {
      auto& st = self->state;
      auto& d = st.data;
      if (d.view.version > 0) {
        if (d.view.cart_id != cmd.cart_id || d.view.owner != cmd.owner)
          return caf::make_error(errc::conflict, std::string{"order id already used"});
        return d.view; // a repeat of the same checkout
      }
      if (st.busy)
        return caf::make_error(errc::conflict, std::string{"the order is being placed"});
      int64_t total = 0;
      json::array items;
      for (auto& l : cmd.items) {
        total += l.quantity * l.unit_price_minor;
        items.push_back(json::object{{"sku", l.sku},
                                     {"quantity", l.quantity},
                                     {"unit_price_minor", l.unit_price_minor}});
      }
      json::error_code ec;
      auto shipping = json::parse(cmd.shipping_json.empty() ? "{}" : cmd.shipping_json, ec);
      st.data.payment_token = cmd.payment_token;
      auto rp = self->make_response_promise<order_view>();
      st.busy = true;
      write(self,
            {{"order_placed",
              {{"cart_id", cmd.cart_id},
               {"owner", cmd.owner},
               {"items", std::move(items)},
               {"currency", cmd.currency},
               {"total_minor", total},
               {"payment_method", cmd.payment_method},
               {"shipping", ec ? json::value{json::object{}} : shipping}}}},
            {cmd.owner, cmd.correlation_id, st.cfg.node}, [self, rp](caf::error err) mutable {
              if (err) {
                self->state.data.payment_token.clear();
                rp.deliver(std::move(err));
              } else {
                rp.deliver(self->state.data.view);
              }
              step_done(self);
            });
      return rp;
    },
    [self, absent](get_order& q) -> caf::result<order_view> {
      if (absent())
        return caf::make_error(errc::not_found, std::string{"unknown order"});
      if (auto err = refuse_read(self->state.data, q.who))
        return err;
      return self->state.data.view;
    },
    [self, absent](get_order_events& q) -> caf::result<std::vector<domain_event>> {
      if (absent())
        return caf::make_error(errc::not_found, std::string{"unknown order"});
      if (auto err = refuse_read(self->state.data, q.who))
        return err;
      return self->state.events;
    },
    [self, absent](order_action& a) -> caf::result<order_view> {
      if (absent())
        return caf::make_error(errc::not_found, std::string{"unknown order"});
      auto& st = self->state;
      if (auto err = refuse_action(st.data, a))
        return err;
      if (auto err = refuse_transition(st.data, a.action))
        return err;
      auto rp = self->make_response_promise<order_view>();
      st.queued.emplace_back(std::move(a), rp);
      advance(self);
      return rp;
    },
    [self](resume_atom) { advance(self); },
    [self](passivate_atom) -> caf::result<bool> {
      auto& st = self->state;
      if (st.busy || !st.queued.empty() || !settled(st.data))
        return false;
      return agree_to_passivate(self);
    },
    [self](handoff_atom) -> caf::result<bool> {
      // An open saga may move: whoever owns the shard next resumes it.
      auto& st = self->state;
      if (st.busy || !st.queued.empty())
        return false;
      return agree_to_passivate(self);
    },
  };
}

} // namespace

caf::actor spawn_order(caf::actor_system& sys, std::string order_id, store_actor store,
                       order_config cfg, caf::actor home) {
  return caf::actor_cast<caf::actor>(
    sys.spawn(order_behavior, std::move(order_id), std::move(store), std::move(cfg), std::move(home)));
}

} // namespace emporium::actors
