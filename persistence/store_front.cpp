#include "persistence/store_front.hpp"

#include "persistence/log.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <random>

namespace emporium::persistence {

namespace {

using namespace protocols;

/// A write waiting for its group, since when.
template <class Write>
struct waiting_write {
  Write write;
  caf::response_promise rp;
  caf::actor_clock::time_point since;
};

template <class Write>
using queue = std::deque<waiting_write<Write>>;

/// One worker's writes: waiting, and whether a group of it is in flight.
struct lane {
  caf::actor worker;
  bool busy = false;
  queue<stock_batch> stock;
  queue<entity_write> entities;
  /// The promises of the group in flight (answered if the worker dies).
  std::shared_ptr<std::vector<caf::response_promise>> in_flight;
  uint64_t group_id = 0; ///< of the group in flight (the hang timer's reference)
  bool hung = false;     ///< the group in flight was counted as a failed call already
  bool dead = false;     ///< its worker went down: writes for it are refused
  int crashes = 0;       ///< of its worker, in a row (restart backoff)
  caf::actor_clock::time_point started; ///< of its worker
  size_t waiting() const { return stock.size() + entities.size(); }
};

struct front_state {
  static inline const char* name = "pg_store";
  std::vector<lane> lanes;
  /// A worker of its own connection that only answers pings, so a ping never
  /// waits behind a group (optional: without it a long group alone trips).
  caf::actor probe;
  store_front_config cfg;
  size_t next_read = 0;
  breaker pg;
  breaker::state shown = breaker::state::closed;
  std::minstd_rand rng{std::random_device{}()};
  protocols::metrics::mailbox_sampler mailbox{"store_front"};
};

struct front_metrics {
  prometheus::Gauge& breaker;
  prometheus::Counter* stale;
};

/// The front's metrics (registered once).
front_metrics& store_front_metrics() {
  static front_metrics m{
    prometheus::BuildGauge()
      .Name("emporium_store_breaker_state")
      .Help("The breaker around PostgreSQL: 0 closed, 1 open, 2 half-open")
      .Register(metrics::registry())
      .Add({}),
    &prometheus::BuildCounter()
       .Name("emporium_store_stale_writes_total")
       .Help("Writes answered unavailable because their transaction had not started in time")
       .Register(metrics::registry())
       .Add({})};
  return m;
}

using self_ptr = caf::stateful_actor<front_state>*;

/// How long a group is in flight before the probe is asked about it (all of
/// hung_after without a probe).
std::chrono::milliseconds first_look(const front_state& st) {
  return st.probe ? st.cfg.hung_after / 2 : st.cfg.hung_after;
}

caf::error breaker_open() {
  return caf::make_error(errc::unavailable, std::string{"PostgreSQL is unavailable (breaker open)"});
}

template <class Write>
void refuse_all(queue<Write>& q, const caf::error& err) {
  for (auto& w : q)
    w.rp.deliver(err);
  q.clear();
}

/// Answers the writes that waited longer than `start_within` (the oldest are
/// in front): they never start.
template <class Write>
void drop_stale(queue<Write>& q, caf::actor_clock::time_point now,
                std::chrono::milliseconds start_within) {
  while (!q.empty() && now - q.front().since >= start_within) {
    q.front().rp.deliver(caf::make_error(
      errc::unavailable, std::string{"PostgreSQL did not take the write in time"}));
    q.pop_front();
    store_front_metrics().stale->Increment();
  }
}

/// Answers every write waiting in the lane (none of them has started).
void refuse_waiting(lane& l, const caf::error& err) {
  refuse_all(l.stock, err);
  refuse_all(l.entities, err);
}

/// Publishes the breaker's state (gauge, and a log line when it changed).
void show(self_ptr self) {
  auto s = self->state.pg.current(self->clock().now());
  store_front_metrics().breaker.Set(s == breaker::state::closed ? 0 : s == breaker::state::open ? 1 : 2);
  if (self->state.cfg.unreachable)
    self->state.cfg.unreachable->store(s != breaker::state::closed, std::memory_order_relaxed);
  if (s != self->state.shown) {
    (s == breaker::state::open ? log()->warn("event=store_breaker state={}", to_string(s))
                               : log()->info("event=store_breaker state={}", to_string(s)));
    self->state.shown = s;
  }
}

/// Refuses every waiting write of every lane (none has started).
void refuse_all_waiting(self_ptr self) {
  for (auto& l : self->state.lanes)
    refuse_waiting(l, breaker_open());
}

/// A call's outcome for the breaker: failed only if PostgreSQL gave nothing
/// but `unavailable` (a refusal by a part's own checks is an answer).
void record(self_ptr self, bool success) {
  auto& pg = self->state.pg;
  auto now = self->clock().now();
  auto was = pg.current(now);
  pg.record(success, now);
  if (was != breaker::state::open && pg.current(now) == breaker::state::open)
    refuse_all_waiting(self);
  show(self);
}

/// Opens the breaker at once (a hung server), refusing what waits.
void trip(self_ptr self) {
  auto& pg = self->state.pg;
  auto now = self->clock().now();
  auto was = pg.current(now);
  pg.trip(now);
  if (was != breaker::state::open)
    refuse_all_waiting(self);
  show(self);
}

bool all_unavailable(const group_outcome& out) {
  size_t n = 0;
  for (auto* v : {&out.stock, &out.entities})
    for (auto& e : *v) {
      if (!e || to_errc(e) != errc::unavailable)
        return false;
      ++n;
    }
  return n > 0;
}


/// Takes up to n parts from the front of q into parts, their promises into rps.
template <class Write>
void take(queue<Write>& q, size_t n, std::vector<Write>& parts,
          std::vector<caf::response_promise>& rps) {
  for (size_t i = 0; i < n; ++i) {
    parts.push_back(std::move(q.front().write));
    rps.push_back(std::move(q.front().rp));
    q.pop_front();
  }
}

void answer_all(std::vector<caf::response_promise>& rps, const caf::error& err) {
  for (auto& rp : rps)
    rp.deliver(err);
}

/// Sends the lane's next group unless one is in flight.
void flush(self_ptr self, size_t i) {
  auto& l = self->state.lanes[i];
  if (l.busy)
    return;
  auto now = self->clock().now();
  drop_stale(l.stock, now, self->state.cfg.start_within);
  drop_stale(l.entities, now, self->state.cfg.start_within);
  if (l.waiting() == 0)
    return;
  if (!self->state.pg.allow(now)) {
    // Open (or its probe is out): nothing waiting has started, so it is
    // refused with nothing written.
    refuse_waiting(l, breaker_open());
    show(self);
    return;
  }
  // Both kinds get at least half of a full group when both have plenty.
  auto max = self->state.cfg.max_group;
  auto n_entities = std::min(l.entities.size(), max - std::min(l.stock.size(), max / 2));
  auto n_stock = std::min(l.stock.size(), max - n_entities);
  write_group g;
  auto rps = std::make_shared<std::vector<caf::response_promise>>();
  take(l.stock, n_stock, g.stock, *rps);
  take(l.entities, n_entities, g.entities, *rps);
  l.busy = true;
  l.in_flight = rps;
  // Whether the group is still this lane's (not answered by a worker's down
  // message); if so, the lane is free for its next group.
  auto ours = [self, i, rps] {
    auto& l = self->state.lanes[i];
    if (l.in_flight != rps)
      return false;
    l.in_flight.reset();
    l.busy = false;
    return true;
  };
  // Its outcome for the breaker, unless it failed after being counted as hung.
  auto count = [self, i](bool success) {
    if (success || !self->state.lanes[i].hung)
      record(self, success);
  };
  auto n = g.stock.size();
  // A group still in flight after hung_after counts as a failed call if the
  // server does not answer a ping either: a hung server answers nothing, and
  // the breaker must open without waiting for the group (which still gets
  // its definite outcome when it comes). See the tick_atom handler.
  l.group_id += 1;
  l.hung = false;
  self->delayed_send(self, first_look(self->state), tick_atom_v, l.group_id,
                     static_cast<uint64_t>(i));
  self->request(l.worker, caf::infinite, std::move(g))
    .then(
      [self, i, rps, n, ours, count](group_outcome& out) {
        if (!ours())
          return;
        count(!all_unavailable(out));
        auto& all = *rps;
        if (out.stock.size() + out.entities.size() != all.size()) {
          answer_all(all, caf::make_error(errc::internal, std::string{"malformed group outcome"}));
        } else {
          for (size_t k = 0; k < all.size(); ++k) {
            auto& err = k < n ? out.stock[k] : out.entities[k - n];
            if (err)
              all[k].deliver(err);
            else
              all[k].deliver(ok_atom_v);
          }
        }
        flush(self, i);
      },
      [self, i, rps, ours, count](caf::error& err) {
        if (!ours())
          return;
        count(false);
        answer_all(*rps, err);
        flush(self, i);
      });
}

/// Counts the lane's group in flight as hung (once), opening the breaker.
void hung(self_ptr self, size_t i, uint64_t group) {
  auto& l = self->state.lanes[i];
  if (l.in_flight && l.group_id == group && !l.hung) {
    l.hung = true;
    trip(self); // hung: nothing answers, so nothing waits for it
  }
}

/// The lane's group has been in flight for `first_look`: with a probe, asks
/// it whether PostgreSQL answers at all, for the rest of hung_after. No
/// answer: hung. An answer: slow (a long fsync, a big group), not hung; look
/// again after as long.
void look_at_group(self_ptr self, size_t i, uint64_t group) {
  auto& st = self->state;
  auto& l = st.lanes[i];
  if (!l.in_flight || l.group_id != group || l.hung)
    return;
  if (!st.probe)
    return hung(self, i, group);
  auto rest = st.cfg.hung_after - first_look(st);
  self->request(st.probe, rest, ping_atom_v)
    .then(
      [self, i, group, rest](ok_atom) {
        auto& l = self->state.lanes[i];
        if (l.in_flight && l.group_id == group)
          self->delayed_send(self, rest, tick_atom_v, group, static_cast<uint64_t>(i));
      },
      [self, i, group](caf::error&) { hung(self, i, group); });
}

template <class Write>
void enqueue(self_ptr self, size_t i, queue<Write> lane::*q, Write w) {
  auto& l = self->state.lanes[i];
  self->state.mailbox.tick(self);
  auto rp = self->make_response_promise();
  if (self->state.pg.current(self->clock().now()) == breaker::state::open) {
    rp.deliver(breaker_open());
    return;
  }
  if (l.dead) {
    rp.deliver(caf::make_error(errc::unavailable, std::string{"a store worker went down"}));
    return;
  }
  if (l.waiting() >= self->state.cfg.max_pending) {
    rp.deliver(caf::make_error(errc::unavailable, std::string{"the store's write queue is full"}));
    return;
  }
  (l.*q).push_back({std::move(w), std::move(rp), self->clock().now()});
  flush(self, i);
}

caf::behavior front(self_ptr self, std::vector<caf::actor> workers, caf::actor probe,
                    store_front_config cfg) {
  auto& st = self->state;
  st.cfg = cfg;
  st.probe = std::move(probe);
  if (st.probe)
    self->monitor(st.probe);
  st.cfg.max_group = std::max<size_t>(2, cfg.max_group);
  st.pg = breaker{cfg.breaker};
  for (auto& w : workers) {
    self->monitor(w);
    st.lanes.push_back(lane{w, false, {}, {}, {}, 0, false, false, 0, self->clock().now()});
  }
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& l : self->state.lanes)
      self->send_exit(l.worker, msg.reason);
    if (self->state.probe)
      self->send_exit(self->state.probe, msg.reason);
    self->quit(msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    // A worker that dies answers nothing more: its group in flight and its
    // waiting writes are answered unavailable (its connection closed, so
    // PostgreSQL rolled back whatever it had not committed).
    auto err = caf::make_error(errc::unavailable, std::string{"a store worker went down"});
    if (self->state.probe && self->state.probe.address() == dm.source)
      self->state.probe = nullptr; // from here a long group alone trips
    auto& st = self->state;
    for (size_t i = 0; i < st.lanes.size(); ++i) {
      auto& l = st.lanes[i];
      if (l.worker.address() != dm.source)
        continue;
      if (l.in_flight)
        answer_all(*l.in_flight, err);
      l.in_flight.reset();
      l.busy = false;
      l.hung = false;
      refuse_waiting(l, err);
      l.dead = true;
      if (!st.cfg.respawn_worker || !dm.reason || dm.reason == caf::exit_reason::user_shutdown)
        continue;
      auto now = self->clock().now();
      l.crashes = now - l.started >= st.cfg.restart.stable_after ? 1 : l.crashes + 1;
      auto delay = protocols::restart_delay(st.cfg.restart, l.crashes, st.rng);
      protocols::metrics::restarts("store_worker").Increment();
      log()->error("event=store_worker_crashed lane={} crashes={} restart_in_ms={} reason={}", i,
                   l.crashes, std::chrono::duration_cast<std::chrono::milliseconds>(delay).count(),
                   self->system().render(dm.reason));
      self->delayed_send(self, delay, resume_atom_v, static_cast<uint64_t>(i));
    }
  });
  auto any = [self]() -> const caf::actor& {
    auto& st = self->state;
    return st.lanes[st.next_read++ % st.lanes.size()].worker;
  };
  // A store read goes to a worker unless the breaker is open.
  auto read = [self, any](auto&& q) {
    if (self->state.pg.current(self->clock().now()) == breaker::state::open) {
      self->make_response_promise().deliver(breaker_open());
      return;
    }
    self->delegate(any(), std::move(q));
  };
  auto n = workers.size();
  return {
    [self, n](stock_batch& b) {
      auto key = std::hash<std::string>{}(b.after.sku) ^ std::hash<std::string>{}(b.after.warehouse);
      enqueue(self, key % n, &lane::stock, std::move(b));
    },
    [self, n](entity_write& w) {
      auto key = std::hash<std::string>{}(w.after.aggregate_id);
      enqueue(self, key % n, &lane::entities, std::move(w));
    },
    [read](load_entity& q) { read(std::move(q)); },
    [read](load_sku& q) { read(std::move(q)); },
    [read](load_events& q) { read(std::move(q)); },
    [read](find_unsettled& q) { read(std::move(q)); },
    [read](locate_reservation& q) { read(std::move(q)); },
    [self, any](ping_atom) -> caf::result<ok_atom> {
      // Readiness asks this: it is a call like any other (a probe when
      // half-open), and answered at once while open.
      if (!self->state.pg.allow(self->clock().now()))
        return breaker_open();
      auto rp = self->make_response_promise<ok_atom>();
      // No answer within hung_after is a failure too (it writes nothing,
      // so answering it is honest). The probe's connection never has a
      // group ahead of the ping.
      auto& to = self->state.probe ? self->state.probe : any();
      self->request(to, self->state.cfg.hung_after, ping_atom_v)
        .then(
          [self, rp](ok_atom) mutable {
            record(self, true);
            rp.deliver(ok_atom_v);
          },
          [self, rp](caf::error& err) mutable {
            auto hung = err == caf::sec::request_timeout;
            auto down = hung || to_errc(err) == errc::unavailable;
            if (hung)
              trip(self);
            else
              record(self, !down);
            rp.deliver(down ? caf::make_error(errc::unavailable, std::string{"PostgreSQL did not answer"}) : std::move(err));
          });
      return rp;
    },
    [self](tick_atom, uint64_t group, uint64_t i) { look_at_group(self, i, group); },
    [self](crash_atom) { // the failure-injection hook: the first live worker
      for (auto& l : self->state.lanes)
        if (!l.dead)
          return self->send_exit(l.worker, caf::exit_reason::kill);
    },
    [self](resume_atom, uint64_t i) { // a crashed worker's backoff ended
      auto& l = self->state.lanes.at(i);
      if (!l.dead)
        return;
      l.worker = self->state.cfg.respawn_worker();
      l.started = self->clock().now();
      self->monitor(l.worker);
      l.dead = false;
      log()->info("event=store_worker_restarted lane={}", i);
    },
  };
}

} // namespace

protocols::store_actor spawn_store_front(caf::actor_system& sys, std::vector<caf::actor> workers,
                                         store_front_config cfg, caf::actor probe) {
  return caf::actor_cast<protocols::store_actor>(
    sys.spawn(front, std::move(workers), std::move(probe), cfg));
}

} // namespace emporium::persistence
