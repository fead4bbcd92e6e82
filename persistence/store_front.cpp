#include "persistence/store_front.hpp"

#include "protocols/errc.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <deque>
#include <functional>
#include <memory>

namespace emporium::persistence {

namespace {

using namespace protocols;

template <class Write>
using queue = std::deque<std::pair<Write, caf::response_promise>>;

/// One worker's writes: waiting, and whether a group of it is in flight.
struct lane {
  caf::actor worker;
  bool busy = false;
  queue<stock_batch> stock;
  queue<entity_write> entities;
  /// The promises of the group in flight (answered if the worker dies).
  std::shared_ptr<std::vector<caf::response_promise>> in_flight;
  size_t waiting() const { return stock.size() + entities.size(); }
};

struct front_state {
  static inline const char* name = "pg_store";
  std::vector<lane> lanes;
  store_front_config cfg;
  size_t next_read = 0;
};

using self_ptr = caf::stateful_actor<front_state>*;

/// Takes up to n parts from the front of q into parts, their promises into rps.
template <class Write>
void take(queue<Write>& q, size_t n, std::vector<Write>& parts,
          std::vector<caf::response_promise>& rps) {
  for (size_t i = 0; i < n; ++i) {
    parts.push_back(std::move(q.front().first));
    rps.push_back(std::move(q.front().second));
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
  if (l.busy || l.waiting() == 0)
    return;
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
  auto n = g.stock.size();
  self->request(l.worker, caf::infinite, std::move(g))
    .then(
      [self, i, rps, n, ours](group_outcome& out) {
        if (!ours())
          return;
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
      [self, i, rps, ours](caf::error& err) {
        if (!ours())
          return;
        answer_all(*rps, err);
        flush(self, i);
      });
}

template <class Write>
void enqueue(self_ptr self, size_t i, queue<Write> lane::*q, Write w) {
  auto& l = self->state.lanes[i];
  auto rp = self->make_response_promise();
  if (l.waiting() >= self->state.cfg.max_pending) {
    rp.deliver(caf::make_error(errc::unavailable, std::string{"the store's write queue is full"}));
    return;
  }
  (l.*q).emplace_back(std::move(w), std::move(rp));
  flush(self, i);
}

caf::behavior front(self_ptr self, std::vector<caf::actor> workers, store_front_config cfg) {
  auto& st = self->state;
  st.cfg = cfg;
  st.cfg.max_group = std::max<size_t>(2, cfg.max_group);
  for (auto& w : workers) {
    self->monitor(w);
    st.lanes.push_back(lane{w, false, {}, {}, {}});
  }
  self->set_exit_handler([self](caf::exit_msg& msg) {
    for (auto& l : self->state.lanes)
      self->send_exit(l.worker, msg.reason);
    self->quit(msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    // A worker that dies answers nothing more: its group in flight and its
    // waiting writes are answered unavailable (its connection closed, so
    // PostgreSQL rolled back whatever it had not committed).
    auto err = caf::make_error(errc::unavailable, std::string{"a store worker went down"});
    for (auto& l : self->state.lanes)
      if (l.worker.address() == dm.source) {
        if (l.in_flight)
          answer_all(*l.in_flight, err);
        l.in_flight.reset();
        for (auto& [w, rp] : l.stock)
          rp.deliver(err);
        for (auto& [w, rp] : l.entities)
          rp.deliver(err);
        l.stock.clear();
        l.entities.clear();
        l.busy = true; // nothing more goes to it
      }
  });
  auto any = [self]() -> const caf::actor& {
    auto& st = self->state;
    return st.lanes[st.next_read++ % st.lanes.size()].worker;
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
    [self, any](load_entity& q) { self->delegate(any(), std::move(q)); },
    [self, any](load_sku& q) { self->delegate(any(), std::move(q)); },
    [self, any](load_events& q) { self->delegate(any(), std::move(q)); },
    [self, any](find_unsettled& q) { self->delegate(any(), std::move(q)); },
    [self, any](locate_reservation& q) { self->delegate(any(), std::move(q)); },
    [self, any](ping_atom) { self->delegate(any(), ping_atom_v); },
  };
}

} // namespace

protocols::store_actor spawn_store_front(caf::actor_system& sys, std::vector<caf::actor> workers,
                                         store_front_config cfg) {
  return caf::actor_cast<protocols::store_actor>(sys.spawn(front, std::move(workers), cfg));
}

} // namespace emporium::persistence
