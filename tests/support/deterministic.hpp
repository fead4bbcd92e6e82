#pragma once

#include "protocols/actors.hpp"
#include "protocols/errc.hpp"

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>

namespace emporium::test {

/// An actor system on CAF's deterministic scheduler: nothing runs until the
/// test says so, and time moves only by advance_time. (CAF's own
/// test_coordinator_fixture needs CAF's test engine, which clashes with doctest.)
class deterministic {
public:
  struct config : caf::actor_system_config {
    config() {
      set("scheduler.policy", caf::atom("testing"));
      set("logger.verbosity", caf::atom("quiet"));
      add_message_types<caf::id_block::emporium>();
    }
  };

  deterministic();
  ~deterministic();

  /// Runs every runnable actor until nothing is left to do. Unlike
  /// test_coordinator::run() it never fires timers: time moves only by
  /// advance_time (periodic timers would otherwise spin forever).
  void run() {
    while (sched.try_run_once()) {
    }
  }

  /// Moves the actor clock (firing due timers) and runs what became runnable.
  void advance_time(caf::timespan d) {
    sched.advance_time(d);
    run();
  }

  /// Sends a request, runs the system, and returns the reply (or error).
  template <class T, class Handle, class Msg>
  caf::expected<T> ask(const Handle& dest, Msg msg) {
    auto pending = send_request(dest, std::move(msg));
    run();
    return receive<T>(pending);
  }

  /// Sends a request without running anything; pass the result to receive().
  template <class Handle, class Msg>
  auto send_request(const Handle& dest, Msg msg) {
    return self->request(caf::actor_cast<caf::actor>(dest), caf::infinite, std::move(msg));
  }

  /// Takes the reply of an earlier request out of the test's mailbox. The reply
  /// must already be there (call run() first): a missing one is an error.
  template <class T, class Pending>
  caf::expected<T> receive(Pending& pending) {
    caf::expected<T> out{caf::make_error(errc::internal, std::string{"no reply"})};
    if (self->mailbox().empty())
      return out; // a reply never comes now: fail instead of waiting forever
    pending.receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { out = std::move(e); });
    return out;
  }

  config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  caf::scoped_actor self;
};

inline deterministic::deterministic()
  : sys(cfg), sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())),
    self(sys) {
}

inline deterministic::~deterministic() {
  // Drain, drop pending timers (the scheduler's shutdown would fire periodic
  // ones forever) and do not wait for actors nothing will run any more.
  run();
  sched.clock().cancel_all();
  sys.await_actors_before_shutdown(false);
}

/// A store double: remembers every batch and answers a write only when the
/// test completes it, so a test can hold a write "in flight".
struct store_double_control {
  std::vector<protocols::stock_batch> batches; ///< every batch received, in order
  std::vector<protocols::entity_write> entity_writes; ///< every entity write, in order
  size_t waiting = 0;                          ///< writes not yet answered (both kinds)
  /// What load_entity answers, by "type/id" (absent: version 0). A write that
  /// completes successfully updates it, as PostgreSQL would.
  std::map<std::string, protocols::entity_record> entities;
  /// Every landed entity event by "type/id", oldest first (what load_events answers).
  std::map<std::string, std::vector<protocols::domain_event>> events;
  protocols::sku_snapshot stored;              ///< what load_sku answers
  /// What locate_reservation answers, by reservation id (absent: unknown).
  std::map<std::string, protocols::reservation_rows> reservations;
  caf::error load_error;                       ///< if set, load_sku fails with it
};

/// Spawns the double; complete_write() answers its oldest waiting write.
inline protocols::store_actor spawn_store_double(caf::actor_system& sys,
                                                 std::shared_ptr<store_double_control> ctl) {
  struct state {
    std::deque<caf::response_promise> waiting;
    std::deque<std::optional<protocols::entity_write>> written; ///< per waiting write
  };
  auto fn = [ctl](caf::stateful_actor<state>* self) -> caf::behavior {
    return {
      [=](protocols::stock_batch& b) {
        ctl->batches.push_back(b);
        ++ctl->waiting;
        self->state.waiting.push_back(self->make_response_promise());
        self->state.written.emplace_back();
        return self->state.waiting.back();
      },
      [=](protocols::entity_write& w) {
        ctl->entity_writes.push_back(w);
        ++ctl->waiting;
        self->state.waiting.push_back(self->make_response_promise());
        self->state.written.emplace_back(w);
        return self->state.waiting.back();
      },
      [=](protocols::ok_atom, caf::error& err) {
        auto rp = std::move(self->state.waiting.front());
        auto written = std::move(self->state.written.front());
        self->state.waiting.pop_front();
        self->state.written.pop_front();
        --ctl->waiting;
        if (err) {
          rp.deliver(std::move(err));
          return;
        }
        if (written) {
          auto key = written->after.aggregate_type + "/" + written->after.aggregate_id;
          ctl->entities[key] = written->after;
          auto& stream = ctl->events[key];
          stream.insert(stream.end(), written->events.begin(), written->events.end());
        }
        rp.deliver(protocols::ok_atom_v);
      },
      [=](protocols::ok_atom, caf::error& err, bool) { // the newest waiting write refused
        auto rp = std::move(self->state.waiting.back());
        self->state.waiting.pop_back();
        self->state.written.pop_back();
        --ctl->waiting;
        rp.deliver(std::move(err));
      },
      [=](protocols::load_entity& q) -> caf::result<protocols::entity_record> {
        if (ctl->load_error)
          return ctl->load_error;
        auto i = ctl->entities.find(q.aggregate_type + "/" + q.aggregate_id);
        if (i == ctl->entities.end())
          return protocols::entity_record{q.aggregate_type, q.aggregate_id};
        return i->second;
      },
      [=](protocols::load_events& q) -> caf::result<std::vector<protocols::domain_event>> {
        if (ctl->load_error)
          return ctl->load_error;
        return ctl->events[q.aggregate_type + "/" + q.aggregate_id];
      },
      [=](protocols::find_unsettled& q) -> caf::result<protocols::entity_ids> {
        protocols::entity_ids out;
        for (auto& [key, row] : ctl->entities)
          if (row.aggregate_type == q.aggregate_type
              && row.state_json.find("\"saga\":\"open\"") != std::string::npos)
            out.ids.push_back(row.aggregate_id);
        return out;
      },
      [=](protocols::load_sku&) -> caf::result<protocols::sku_snapshot> {
        if (ctl->load_error)
          return ctl->load_error;
        return ctl->stored;
      },
      [=](protocols::locate_reservation& q) -> caf::result<protocols::reservation_rows> {
        if (auto i = ctl->reservations.find(q.reservation_id); i != ctl->reservations.end())
          return i->second;
        return protocols::reservation_rows{};
      },
      [=](protocols::ping_atom) -> caf::result<protocols::ok_atom> {
        return protocols::ok_atom_v;
      },
    };
  };
  return caf::actor_cast<protocols::store_actor>(sys.spawn(fn));
}

/// Answers the store double's oldest waiting write (with `err` if given) and
/// runs what follows.
inline void complete_write(deterministic& d, const protocols::store_actor& store,
                           caf::error err = caf::error{}) {
  d.self->send(caf::actor_cast<caf::actor>(store), protocols::ok_atom_v, std::move(err));
  d.run();
}

/// Refuses the store double's newest waiting write with `err` (as a store
/// refuses what has not started while an older write is still in flight).
inline void refuse_newest_write(deterministic& d, const protocols::store_actor& store,
                                caf::error err) {
  d.self->send(caf::actor_cast<caf::actor>(store), protocols::ok_atom_v, std::move(err), true);
  d.run();
}

/// Stands in for the router: (route_atom, key, msg) goes to the entity of
/// `key`, spawned on first use by `spawn(key)`.
inline caf::actor spawn_directory(caf::actor_system& sys,
                                  std::function<caf::actor(const protocols::entity_key&)> spawn) {
  auto fn = [spawn](caf::event_based_actor* self) -> caf::behavior {
    auto entities = std::make_shared<std::map<std::string, caf::actor>>();
    return {
      [=](protocols::route_atom, const protocols::entity_key& key, caf::message& msg) {
        auto& a = (*entities)[key.str()];
        if (!a) {
          a = spawn(key);
          self->link_to(a); // they stop with the directory
        }
        self->delegate(a, std::move(msg));
      },
      [=](const protocols::entity_key& key) { // a crash: the entity dies, the next use recovers it
        if (auto i = entities->find(key.str()); i != entities->end()) {
          self->unlink_from(i->second);
          self->send_exit(i->second, caf::exit_reason::kill);
          entities->erase(i);
        }
      },
    };
  };
  return sys.spawn(fn);
}

/// A deterministic system with a store double, for tests of one actor.
struct with_store_double : deterministic {
  std::shared_ptr<store_double_control> ctl = std::make_shared<store_double_control>();
  protocols::store_actor store = spawn_store_double(sys, ctl);

  /// Answers every waiting write with success, including those they cause.
  void complete_all_writes() {
    while (ctl->waiting > 0)
      complete_write(*this, store);
  }
};

} // namespace emporium::test
