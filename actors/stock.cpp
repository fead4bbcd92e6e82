#include "actors/stock.hpp"

#include "actors/log.hpp"
#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

namespace emporium::actors {

using namespace protocols;

actor_wall_clock::actor_wall_clock(caf::local_actor* self)
  : base_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count()),
    base(self->clock().now()) {
}

int64_t actor_wall_clock::now_ms(caf::local_actor* self) const {
  return base_ms
         + std::chrono::duration_cast<std::chrono::milliseconds>(self->clock().now() - base)
             .count();
}

namespace {

struct reservation_metrics {
  prometheus::Counter* held;
  prometheus::Counter* insufficient;
  prometheus::Counter* released;
  prometheus::Counter* expired;
  prometheus::Counter* committed;

  static reservation_metrics& get() {
    static reservation_metrics instance = [] {
      auto& f = prometheus::BuildCounter()
                  .Name("emporium_reservations_total")
                  .Help("Reservation outcomes on stock pairs")
                  .Register(metrics::registry());
      return reservation_metrics{&f.Add({{"outcome", "held"}}),
                                 &f.Add({{"outcome", "insufficient_stock"}}),
                                 &f.Add({{"outcome", "released"}}),
                                 &f.Add({{"outcome", "expired"}}),
                                 &f.Add({{"outcome", "committed"}})};
    }();
    return instance;
  }
};

/// Hold values as they were before a window of changes (nullopt: absent),
/// to roll the working state back without copying it.
using undo_log = std::map<std::string, std::optional<hold_view>>;

struct waiter {
  caf::typed_response_promise<stock_result> rp;
  stock_result reply;
  std::string request_id; ///< for log lines about this request
};

/// A batch written but not yet confirmed.
struct batch_in_flight {
  uint64_t seq = 0;            ///< which answer is its own
  stock_level after;           ///< the level once it is durable
  undo_log undo;               ///< how to undo its hold changes
  std::vector<waiter> waiters; ///< answered when it lands
};

/// Batches a pair may have in flight at once. The store keeps a pair on one
/// connection, so they commit in order; the second overlaps the first's round
/// trip instead of waiting for it (at fixed concurrency, latency is throughput).
constexpr size_t max_in_flight = 2;

/// How long a pair waits before writing expiries again after a failed write.
constexpr std::chrono::milliseconds expiry_retry{1000};

prometheus::Gauge& pair_mailbox_series() {
  static auto& series = metrics::mailbox_sampler::series("stock_pair");
  return series;
}

struct stock_state {
  static inline const char* name = "stock";

  stock_state(caf::local_actor* self) : clock(self) {
  }

  /// Sampled on reservations (the hot path): `emporium_mailbox_depth{actor="stock_pair"}`.
  metrics::mailbox_sampler mailbox{pair_mailbox_series()};
  stock_level durable; ///< the level PostgreSQL has
  stock_level level;   ///< working: durable + batches in flight + pending changes
  std::unordered_map<std::string, hold_view> holds; ///< working live holds ("held", "committed")
  std::set<std::pair<int64_t, std::string>> expiries; ///< (expires_at_ms, id) of "held"
  std::deque<batch_in_flight> in_flight; ///< oldest first
  uint64_t next_seq = 0;
  /// Batches given up after an earlier one failed: their answers (refusals,
  /// since they expected its version) are still due. No new batch goes out
  /// before they came, or versions could repeat.
  std::set<uint64_t> abandoned;
  undo_log pending_undo;        ///< how to undo the pending changes
  std::vector<waiter> pending;  ///< answered after the next batch lands
  std::vector<domain_event> pending_events;
  std::map<std::string, hold_view> pending_holds; ///< changed rows, latest wins
  int64_t timer_due_ms = 0; ///< earliest scheduled expiry check, 0: none
  store_actor store;
  stock_config cfg;
  actor_wall_clock clock;
  std::string aggregate_id;
};

using self_ptr = stock_actor::stateful_pointer<stock_state>;

void recompute(stock_level& l) {
  l.available = std::max<int64_t>(0, l.on_hand - l.reserved);
}

/// Records one event against the working state (version += 1).
void emit(self_ptr self, const char* type, boost::json::object data, const std::string& user,
          const std::string& correlation) {
  auto& st = self->state;
  auto& l = st.level;
  l.version += 1;
  data["sku"] = l.sku;
  data["warehouse"] = l.warehouse;
  st.pending_events.push_back(domain_event{new_uuid(), type, st.aggregate_id, "stock",
                                           l.version, st.clock.now_ms(self),
                                           boost::json::serialize(data), correlation, "", user,
                                           st.cfg.node});
}

/// Keeps `h` in the working state if it is live (held or committed).
void keep_if_live(stock_state& st, std::string id, hold_view h) {
  if (h.status != "held" && h.status != "committed")
    return;
  if (h.status == "held")
    st.expiries.emplace(h.expires_at_ms, id);
  st.holds.emplace(std::move(id), std::move(h));
}

/// Sets the working value of one hold (nullopt: gone), keeping the expiry index.
void set_hold(stock_state& st, const std::string& id, const std::optional<hold_view>& h) {
  if (auto i = st.holds.find(id); i != st.holds.end()) {
    st.expiries.erase({i->second.expires_at_ms, id});
    st.holds.erase(i);
  }
  if (h)
    keep_if_live(st, id, *h);
}

/// Records a changed hold: written with the next batch, undoable until then.
void change_hold(stock_state& st, const hold_view& h) {
  if (st.pending_undo.count(h.reservation_id) == 0) {
    auto i = st.holds.find(h.reservation_id);
    st.pending_undo.emplace(h.reservation_id, i == st.holds.end()
                                                ? std::nullopt
                                                : std::optional<hold_view>{i->second});
  }
  st.pending_holds[h.reservation_id] = h;
  set_hold(st, h.reservation_id, h);
}

/// Up to five request ids of the requests waiting now, for a log line.
std::string waiting_requests(const stock_state& st) {
  std::string out;
  size_t n = 0;
  auto add = [&](const std::vector<waiter>& ws) {
    for (auto& w : ws) {
      if (n++ >= 5)
        return;
      out += out.empty() ? "" : ",";
      out += w.request_id.empty() ? "-" : w.request_id;
    }
  };
  for (auto& b : st.in_flight)
    add(b.waiters);
  add(st.pending);
  return out;
}

/// Batch `k` of those in flight failed: answers it, every later batch and
/// the pending requests with `err` and drops their changes, back to the
/// level before batch k. The earlier batches are still in flight and keep
/// their own answers (the store may refuse a later batch before an earlier
/// one lands: a breaker opening refuses only what has not started). The
/// later batches expected batch k's version: their refusals are awaited.
void fail_from(stock_state& st, size_t k, const caf::error& err) {
  for (size_t b = k; b < st.in_flight.size(); ++b) {
    for (auto& w : st.in_flight[b].waiters)
      w.rp.deliver(err);
    if (b > k)
      st.abandoned.insert(st.in_flight[b].seq);
  }
  for (auto& w : st.pending)
    w.rp.deliver(err);
  st.pending.clear();
  st.pending_events.clear();
  st.pending_holds.clear();
  for (auto& [id, old] : st.pending_undo) // newest first
    set_hold(st, id, old);
  st.pending_undo.clear();
  for (auto b = st.in_flight.size(); b-- > k;)
    for (auto& [id, old] : st.in_flight[b].undo)
      set_hold(st, id, old);
  st.in_flight.erase(st.in_flight.begin() + static_cast<std::ptrdiff_t>(k), st.in_flight.end());
  st.level = st.in_flight.empty() ? st.durable : st.in_flight.back().after;
}

/// Nothing written or being written: the pair's working state is durable.
bool settled(const stock_state& st) {
  return st.in_flight.empty() && st.abandoned.empty() && st.pending_events.empty();
}

void flush(self_ptr self);

/// Queues a reply for after the pending changes are durable.
caf::typed_response_promise<stock_result>
answer_when_durable(self_ptr self, stock_result reply, const std::string& request_id) {
  auto rp = self->make_response_promise<stock_result>();
  auto& st = self->state;
  if (settled(st)) {
    rp.deliver(std::move(reply)); // nothing to wait for
    return rp;
  }
  st.pending.push_back({rp, std::move(reply), request_id});
  flush(self);
  return rp;
}

/// The live hold with this id, or nullptr.
hold_view* find_hold(stock_state& st, const std::string& id) {
  auto i = st.holds.find(id);
  return i == st.holds.end() ? nullptr : &i->second;
}

caf::typed_response_promise<stock_result> fail(self_ptr self, caf::error err) {
  auto rp = self->make_response_promise<stock_result>();
  rp.deliver(std::move(err));
  return rp;
}

void schedule_expiry(self_ptr self) {
  auto& st = self->state;
  if (st.expiries.empty())
    return;
  auto earliest = st.expiries.begin()->first;
  if (st.timer_due_ms != 0 && st.timer_due_ms <= earliest)
    return;
  st.timer_due_ms = earliest;
  auto delay = std::max<int64_t>(0, earliest - st.clock.now_ms(self)) + 1;
  self->delayed_send(self, std::chrono::milliseconds{delay}, expire_atom_v);
}

/// After a failed write: the next expiry check in `expiry_retry` at the
/// earliest, whatever is due.
void retry_expiry_later(self_ptr self) {
  auto& st = self->state;
  if (st.expiries.empty())
    return;
  auto at = std::max(st.expiries.begin()->first, st.clock.now_ms(self) + expiry_retry.count());
  if (st.timer_due_ms != 0 && st.timer_due_ms <= at)
    return;
  st.timer_due_ms = at;
  self->delayed_send(self, std::chrono::milliseconds{at - st.clock.now_ms(self) + 1}, expire_atom_v);
}

caf::error unknown_reservation() {
  return caf::make_error(errc::not_found, std::string{"unknown reservation"});
}

/// Makes `l` the durable level, and shows it to readers.
void set_durable(self_ptr self, const stock_level& l) {
  auto& st = self->state;
  st.durable = l;
  if (st.cfg.view)
    st.cfg.view->publish(l, self->id(), st.cfg.under.epoch);
  if (st.cfg.feed)
    st.cfg.feed->stock_changed(l);
}

void flush(self_ptr self) {
  auto& st = self->state;
  if (!st.abandoned.empty() || st.in_flight.size() >= max_in_flight)
    return;
  if (st.pending_events.empty()) {
    // Only no-op answers wait: they go with the last batch in flight, if any.
    if (st.in_flight.empty()) {
      for (auto& w : st.pending)
        w.rp.deliver(std::move(w.reply));
    } else {
      auto& last = st.in_flight.back().waiters;
      std::move(st.pending.begin(), st.pending.end(), std::back_inserter(last));
    }
    st.pending.clear();
    return;
  }
  // `stock_low` once per crossing downwards, in the batch that crosses.
  auto low = [](const stock_level& l) {
    return l.low_stock_threshold > 0 && l.available <= l.low_stock_threshold;
  };
  if (!low(st.in_flight.empty() ? st.durable : st.in_flight.back().after) && low(st.level)) {
    auto user = st.pending_events.back().user_id;
    auto correlation = st.pending_events.back().correlation_id;
    emit(self, "stock_low",
         {{"available", st.level.available}, {"low_stock_threshold", st.level.low_stock_threshold}},
         user, correlation);
  }
  stock_batch batch;
  batch.expected_version = st.in_flight.empty() ? st.durable.version
                                                : st.in_flight.back().after.version;
  batch.after = st.level;
  batch.under = st.cfg.under;
  batch.events = std::move(st.pending_events);
  batch.hold_changes.reserve(st.pending_holds.size());
  for (auto& [id, h] : st.pending_holds)
    batch.hold_changes.push_back(std::move(h));
  st.pending_events.clear();
  st.pending_holds.clear();
  auto seq = ++st.next_seq;
  st.in_flight.push_back({seq, st.level, std::move(st.pending_undo), std::move(st.pending)});
  st.pending_undo.clear();
  st.pending.clear();
  self->request(st.store, caf::infinite, std::move(batch))
    .then(
      [self, seq](ok_atom) {
        auto& st = self->state;
        if (st.in_flight.empty() || st.in_flight.front().seq != seq) {
          // A batch we gave up on committed after all (or out of order):
          // PostgreSQL is ahead of us. Stop, so the next request recovers
          // this pair from it.
          log()->error("event=stock_diverged aggregate={}", st.aggregate_id);
          self->quit(caf::make_error(errc::conflict));
          return;
        }
        auto done = std::move(st.in_flight.front());
        st.in_flight.pop_front();
        set_durable(self, done.after);
        for (auto& w : done.waiters)
          w.rp.deliver(std::move(w.reply));
        flush(self);
        schedule_expiry(self);
      },
      [self, seq](caf::error& err) {
        auto& st = self->state;
        if (st.abandoned.erase(seq) > 0) { // the expected refusal of a given-up batch
          if (st.abandoned.empty())
            flush(self);
          return;
        }
        auto k = static_cast<size_t>(
          std::find_if(st.in_flight.begin(), st.in_flight.end(),
                       [seq](const batch_in_flight& b) { return b.seq == seq; })
          - st.in_flight.begin());
        if (k == st.in_flight.size())
          return; // answered already
        log()->warn("event=stock_write_failed aggregate={} error={} batches={} request_ids={}",
                    st.aggregate_id, to_string(to_errc(err)), st.in_flight.size(),
                    waiting_requests(st));
        fail_from(st, k, err);
        if (auto e = to_errc(err); e == errc::conflict || e == errc::fenced) {
          // PostgreSQL holds a newer version than we do, or another node owns
          // the shard now: stop, so the next request recovers this pair from
          // durable state (on whichever node owns it).
          self->quit(err);
          return;
        }
        // Expiries that were part of the failed write are live holds again:
        // try them again after a pause (not at once, or an outage would make
        // every due hold a write loop).
        retry_expiry_later(self);
      });
}

/// Releases every held hold whose expiry has passed (one write), then arms
/// the timer for the next one.
void expire_due(self_ptr self) {
  auto& st = self->state;
  auto now = st.clock.now_ms(self);
  std::vector<hold_view> due;
  for (auto i = st.expiries.begin(); i != st.expiries.end() && i->first <= now; ++i)
    due.push_back(st.holds.at(i->second));
  for (auto& h : due) {
    h.status = "expired";
    st.level.reserved -= h.quantity;
    change_hold(st, h);
    emit(self, "reservation_expired",
         {{"reservation_id", h.reservation_id}, {"quantity", h.quantity}}, "", "");
    reservation_metrics::get().expired->Increment();
  }
  recompute(st.level);
  if (!due.empty())
    flush(self);
  schedule_expiry(self);
}

stock_actor::behavior_type stock_behavior(self_ptr self, pair_snapshot snapshot,
                                          store_actor store, stock_config cfg) {
  auto& st = self->state;
  st.store = std::move(store);
  st.cfg = std::move(cfg);
  st.aggregate_id = snapshot.level.sku + "@" + snapshot.level.warehouse;
  recompute(snapshot.level);
  st.level = snapshot.level;
  set_durable(self, snapshot.level);
  st.holds.reserve(snapshot.holds.size());
  for (auto& h : snapshot.holds) { // moved, not copied: a hot pair recovers 500 000 of them
    auto id = h.reservation_id;
    keep_if_live(st, std::move(id), std::move(h));
  }
  metrics::actors("stock").Increment();
  self->attach_functor([view = st.cfg.view, wh = st.level.warehouse, sku = st.level.sku,
                        id = self->id()](const caf::error& reason) {
    metrics::actors("stock").Decrement();
    // Passivation and handoff (the SKU stops idle pairs with user_shutdown)
    // leave the last durable level to be read; any other end may mean it is
    // wrong (a conflict, a fenced write, a crash).
    if (view && reason != caf::exit_reason::user_shutdown)
      view->withdraw(wh, sku, id);
  });
  expire_due(self); // holds that expired while no actor ran, before any request
  return {
    [self](push_stock_level& c) {
      auto& l = self->state.level;
      if (c.seq <= l.last_seq)
        return answer_when_durable(self, stock_result{l, false, {}}, c.correlation_id);
      boost::json::object data{{"on_hand", c.on_hand},
                               {"previous_on_hand", l.on_hand},
                               {"seq", c.seq}};
      l.on_hand = c.on_hand;
      l.last_seq = c.seq;
      if (c.has_threshold)
        l.low_stock_threshold = c.low_stock_threshold;
      data["low_stock_threshold"] = l.low_stock_threshold;
      recompute(l);
      emit(self, "stock_level_pushed", std::move(data), c.user_id, c.correlation_id);
      return answer_when_durable(self, stock_result{l, true, {}}, c.correlation_id);
    },
    [self](adjust_stock& c) {
      auto& l = self->state.level;
      int64_t next = 0;
      if (__builtin_add_overflow(l.on_hand, c.delta, &next) || next < 0)
        return fail(self, caf::make_error(errc::conflict, std::string{"on_hand would become "
                                                                      "negative or overflow"}));
      boost::json::object data{{"delta", c.delta}, {"reason", c.reason}, {"on_hand", next}};
      l.on_hand = next;
      recompute(l);
      emit(self, "stock_adjusted", std::move(data), c.user_id, c.correlation_id);
      return answer_when_durable(self, stock_result{l, true, {}}, c.correlation_id);
    },
    [self](reserve_stock& c) {
      auto& st = self->state;
      st.mailbox.tick(self);
      auto& l = st.level;
      if (c.reservation_id.empty())
        c.reservation_id = new_id("rsv_");
      if (c.expires_at_ms == 0)
        c.expires_at_ms = st.clock.now_ms(self) + c.ttl_ms;
      if (auto* held = find_hold(st, c.reservation_id)) {
        if (held->quantity != c.quantity)
          return fail(self, caf::make_error(errc::conflict,
                                            std::string{"reservation id already used"}));
        return answer_when_durable(self, stock_result{l, false, *held}, c.correlation_id);
      }
      if (c.quantity <= 0 || c.quantity > l.available) {
        reservation_metrics::get().insufficient->Increment();
        return fail(self, caf::make_error(errc::insufficient_stock, l.available));
      }
      hold_view h{c.reservation_id, l.warehouse, c.quantity, c.expires_at_ms, "held", c.user_id};
      l.reserved += c.quantity;
      recompute(l);
      change_hold(st, h);
      emit(self, "stock_reserved",
           {{"reservation_id", c.reservation_id},
            {"quantity", c.quantity},
            {"expires_at_ms", c.expires_at_ms}},
           c.user_id, c.correlation_id);
      reservation_metrics::get().held->Increment();
      return answer_when_durable(self, stock_result{l, true, std::move(h)}, c.correlation_id);
    },
    [self](release_stock& c) {
      auto& st = self->state;
      auto* held = find_hold(st, c.reservation_id);
      if (held == nullptr)
        return fail(self, unknown_reservation());
      if (held->status == "committed" && !c.uncommit)
        return fail(self, caf::make_error(errc::invalid_state,
                                          std::string{"reservation is committed"}));
      auto h = *held;
      auto& l = st.level;
      if (h.status == "committed")
        l.committed -= h.quantity;
      h.status = "released";
      l.reserved -= h.quantity;
      recompute(l);
      change_hold(st, h);
      emit(self, "reservation_released",
           {{"reservation_id", h.reservation_id}, {"quantity", h.quantity}}, c.user_id,
           c.correlation_id);
      reservation_metrics::get().released->Increment();
      return answer_when_durable(self, stock_result{l, true, std::move(h)}, c.correlation_id);
    },
    [self](commit_stock& c) {
      auto& st = self->state;
      auto* held = find_hold(st, c.reservation_id);
      if (held == nullptr)
        return fail(self, unknown_reservation());
      auto& l = st.level;
      if (held->status == "committed")
        return answer_when_durable(self, stock_result{l, false, *held}, c.correlation_id);
      auto h = *held;
      h.status = "committed";
      l.committed += h.quantity;
      change_hold(st, h);
      emit(self, "reservation_committed",
           {{"reservation_id", h.reservation_id}, {"quantity", h.quantity}}, c.user_id,
           c.correlation_id);
      reservation_metrics::get().committed->Increment();
      return answer_when_durable(self, stock_result{l, true, std::move(h)}, c.correlation_id);
    },
    [self](fulfil_stock& c) {
      auto& st = self->state;
      auto* held = find_hold(st, c.reservation_id);
      if (held == nullptr)
        return fail(self, unknown_reservation());
      if (held->status != "committed")
        return fail(self, caf::make_error(errc::invalid_state,
                                          std::string{"reservation is not committed"}));
      auto h = *held;
      h.status = "fulfilled";
      auto& l = st.level;
      l.on_hand -= h.quantity;
      l.reserved -= h.quantity;
      l.committed -= h.quantity;
      recompute(l);
      change_hold(st, h);
      emit(self, "stock_fulfilled",
           {{"reservation_id", h.reservation_id}, {"quantity", h.quantity}, {"on_hand", l.on_hand}},
           c.user_id, c.correlation_id);
      return answer_when_durable(self, stock_result{l, true, std::move(h)}, c.correlation_id);
    },
    [self](extend_hold& c) {
      auto& st = self->state;
      auto* held = find_hold(st, c.reservation_id);
      if (held == nullptr)
        return fail(self, unknown_reservation());
      auto& l = st.level;
      if (held->status != "held" || c.expires_at_ms <= held->expires_at_ms)
        return answer_when_durable(self, stock_result{l, false, *held}, c.correlation_id);
      auto h = *held;
      h.expires_at_ms = c.expires_at_ms;
      change_hold(st, h);
      emit(self, "reservation_extended",
           {{"reservation_id", h.reservation_id}, {"expires_at_ms", h.expires_at_ms}}, c.user_id,
           c.correlation_id);
      schedule_expiry(self);
      return answer_when_durable(self, stock_result{l, true, std::move(h)}, c.correlation_id);
    },
    [self](get_stock_level& q) -> stock_level {
      return q.include_pending ? self->state.level : self->state.durable;
    },
    [self](get_hold& q) -> caf::result<hold_view> {
      if (auto* held = find_hold(self->state, q.reservation_id))
        return *held;
      return unknown_reservation();
    },
    [self](passivate_atom) -> bool {
      auto& st = self->state;
      if (!settled(st))
        return false;
      return st.expiries.empty(); // live holds need their expiry timer
    },
    [self](handoff_atom) -> bool {
      // Live holds may move: the next owner's recovery arms their expiry.
      auto& st = self->state;
      return settled(st);
    },
    [self](expire_atom) {
      self->state.timer_due_ms = 0;
      expire_due(self);
    },
  };
}

} // namespace

stock_actor spawn_stock(caf::actor_system& sys, pair_snapshot snapshot, store_actor store,
                        stock_config cfg) {
  return sys.spawn(stock_behavior, std::move(snapshot), std::move(store), std::move(cfg));
}

stock_actor spawn_linked_stock(caf::local_actor* parent, pair_snapshot snapshot,
                               store_actor store, stock_config cfg) {
  return parent->spawn<caf::linked>(stock_behavior, std::move(snapshot), std::move(store),
                                    std::move(cfg));
}

} // namespace emporium::actors
