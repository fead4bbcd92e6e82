#include "cluster/router.hpp"

#include "cluster/assignment.hpp"
#include "protocols/any_answer.hpp"
#include "protocols/errc.hpp"
#include "protocols/logging.hpp"
#include "protocols/metrics.hpp"
#include "protocols/supervisor.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <deque>
#include <exception>
#include <stdexcept>
#include <random>
#include <set>
#include <unordered_map>

namespace emporium::cluster {

using namespace protocols;

namespace {

spdlog::logger* log() {
  static auto instance = named_logger("cluster");
  return instance.get();
}

struct remote_metrics {
  prometheus::Counter* ok;
  prometheus::Counter* failed;
  prometheus::Counter* retried;
  prometheus::Counter* refused; ///< forwarded here for a shard we do not hold
  prometheus::Histogram* seconds;
  prometheus::Counter* feed_out; ///< live changes sent to peers (one per peer)
  prometheus::Counter* feed_in;  ///< live changes received from peers

  static remote_metrics& get() {
    static remote_metrics instance = [] {
      auto& reg = metrics::registry();
      auto& asks = prometheus::BuildCounter()
                     .Name("emporium_remote_asks_total")
                     .Help("Requests forwarded to the node owning their shard, by outcome")
                     .Register(reg);
      auto& latency = prometheus::BuildHistogram()
                        .Name("emporium_remote_ask_seconds")
                        .Help("Round trip of a request forwarded to the owning node")
                        .Register(reg);
      auto& feed = prometheus::BuildCounter()
                     .Name("emporium_feed_relayed_total")
                     .Help("Live stock and order changes relayed between nodes for storefront "
                           "subscribers, by direction")
                     .Register(reg);
      return remote_metrics{&asks.Add({{"outcome", "ok"}}), &asks.Add({{"outcome", "error"}}),
                            &asks.Add({{"outcome", "retried"}}),
                            &asks.Add({{"outcome", "refused"}}),
                            &latency.Add({}, metrics::latency_buckets()),
                            &feed.Add({{"direction", "out"}}), &feed.Add({{"direction", "in"}})};
    }();
    return instance;
  }
};

/// How often requests waiting for an owner look again.
constexpr auto transit_retry = std::chrono::milliseconds{50};

/// Requests buffered for one entity while it decides whether to stop; beyond
/// this, 503 at once (every queue is bounded).
constexpr size_t max_buffered = 1024;

/// How long an entity may take to say whether it stops.
constexpr auto stop_timeout = std::chrono::seconds{10};

struct pending_request {
  entity_key key;
  uint32_t shard = 0;
  caf::message msg;
  caf::response_promise rp;
  caf::actor_clock::time_point deadline;
};

struct entry {
  caf::actor actor;
  caf::actor_clock::time_point last_used;
  uint32_t shard = 0;
  int64_t epoch = 0;     ///< the lease epoch it writes under
  bool stopping = false; ///< asked to passivate or hand off, answer pending
  /// Requests that arrived while the entity was deciding whether to stop.
  std::vector<std::pair<caf::message, caf::response_promise>> buffered;
};

/// What the router remembers of a key's crashes.
struct crash_record {
  int crashes = 0; ///< in a row, each within stable_after of the one before
  caf::actor_clock::time_point last;
  caf::actor_clock::time_point broken_until; ///< requests answer 503 until then
};

struct shard_state {
  static inline const char* name = "entity_router";
  std::unordered_map<std::string, crash_record> crashes; ///< by key.str(), bounded
  std::minstd_rand rng{std::random_device{}()};
  metrics::mailbox_sampler mailbox{"entity_router"}; ///< all shard actors: one series
  std::unordered_map<std::string, entry> entities; ///< by key.str()
  /// The live entities by address, with a strong handle each: shared with
  /// the hook that hands them off if this shard actor crashes
  /// (orphan_reaper), which keeps them alive past this state. Without it an
  /// orphan's last reference went with the state and CAF ended it
  /// `unreachable`, mid-write, its linked pairs with it: answers of
  /// committed writes were lost.
  std::shared_ptr<std::unordered_map<caf::actor_addr, std::pair<entity_key, caf::actor>>> keys
    = std::make_shared<std::unordered_map<caf::actor_addr, std::pair<entity_key, caf::actor>>>();
  std::map<entity_kind, entity_factory> factories;
  router_config cfg;
  std::shared_ptr<shard_table> table; ///< null: every shard is local, unfenced
  std::shared_ptr<const shard_table::routes> routes;
  std::deque<pending_request> waiting; ///< for a shard with no reachable owner yet
  bool retry_armed = false;
  /// Requests sent to each peer and not answered yet: a peer that goes down
  /// answers none of them, so its down message answers them (503).
  std::unordered_map<caf::actor_addr, std::map<uint64_t, std::shared_ptr<pending_request>>> remote;
  std::set<caf::actor_addr> dead_peers; ///< down since the last routes
  uint64_t next_remote = 0;
};

using self_ptr = caf::stateful_actor<shard_state>*;

uint32_t shard_of_key(self_ptr self, const entity_key& key) {
  return cluster::shard_of(key, self->state.cfg.shards);
}

bool owned_here(self_ptr self, uint32_t shard) {
  return !self->state.table || self->state.table->owned(shard, self->clock().now());
}

int64_t current_epoch(self_ptr self, uint32_t shard) {
  return self->state.table ? self->state.table->epoch(shard) : 0;
}

caf::actor spawn_entity(self_ptr self, const entity_key& key, uint32_t shard, int64_t epoch) {
  auto i = self->state.factories.find(key.kind);
  if (i == self->state.factories.end())
    return {};
  auto a = i->second(self->system(), key.id, caf::actor_cast<caf::actor>(self),
                     fence{shard, epoch});
  self->monitor(a);
  (*self->state.keys)[a.address()] = {key, a};
  return a;
}

void route(self_ptr self, pending_request req, bool forwarded);

void flush_buffered(entry& e) {
  for (auto& [msg, rp] : e.buffered)
    rp.delegate(e.actor, std::move(msg));
  e.buffered.clear();
}

/// The entity stays: it serves again, starting with what was buffered.
void keep(self_ptr self, const std::string& key) {
  auto& st = self->state;
  if (auto i = st.entities.find(key); i != st.entities.end() && i->second.stopping) {
    i->second.stopping = false;
    i->second.last_used = self->clock().now();
    flush_buffered(i->second);
  }
}

/// Asks the entity whether it may stop now (`question`: passivate_atom when
/// idle, handoff_atom when its shard moves); requests for it wait in the
/// router meanwhile, so none reaches an instance that is stopping. Agreed: its
/// down message finishes the job. Refused, or no answer in time: it serves
/// again (a handoff asks again at the coordinator's next round).
template <class Question>
void try_stop(self_ptr self, const std::string& key, entry& e, Question question) {
  if (e.stopping)
    return;
  e.stopping = true;
  self->request(e.actor, stop_timeout, question)
    .then(
      [self, key](bool stopping) {
        if (!stopping)
          keep(self, key);
      },
      [self, key](caf::error&) {
        // Stuck or gone: if gone, its down message came first and took the
        // entry (or started a fresh instance for the buffered requests).
        keep(self, key);
      });
}

/// Delivers to the local entity of a shard this node holds.
void to_entity(self_ptr self, pending_request& req) {
  auto& st = self->state;
  auto name = req.key.str();
  auto epoch = current_epoch(self, req.shard);
  auto i = st.entities.find(name);
  if (i == st.entities.end()) {
    if (auto c = st.crashes.find(name);
        c != st.crashes.end() && self->clock().now() < c->second.broken_until) {
      req.rp.deliver(caf::make_error(errc::unavailable,
                                     std::string{"this entity failed to recover; it is held "
                                                 "until its restart backoff ends"}));
      return;
    }
    auto a = spawn_entity(self, req.key, req.shard, epoch);
    if (!a) {
      req.rp.deliver(caf::make_error(errc::not_found, std::string{"unknown entity kind"}));
      return;
    }
    i = st.entities.emplace(name, entry{std::move(a), {}, req.shard, epoch, false, {}}).first;
  }
  auto& e = i->second;
  if (e.epoch != epoch)
    try_stop(self, name, e, handoff_atom_v); // an instance of an older lease: replace it
  if (e.stopping) {
    if (e.buffered.size() >= max_buffered) {
      req.rp.deliver(caf::make_error(errc::unavailable, std::string{"entity is busy stopping"}));
      return;
    }
    e.buffered.emplace_back(std::move(req.msg), std::move(req.rp));
    return;
  }
  e.last_used = self->clock().now();
  req.rp.delegate(e.actor, std::move(req.msg));
}

void arm_retry(self_ptr self) {
  if (self->state.retry_armed || self->state.waiting.empty())
    return;
  self->state.retry_armed = true;
  self->delayed_send(self, transit_retry, tick_atom_v);
}

void wait_for_owner(self_ptr self, pending_request req) {
  auto& st = self->state;
  if (st.waiting.size() >= st.cfg.max_waiting) {
    req.rp.deliver(caf::make_error(errc::unavailable, std::string{"too many requests waiting for "
                                                                  "a shard owner"}));
    return;
  }
  st.waiting.push_back(std::move(req));
  arm_retry(self);
}

/// Sends the request to the owner's endpoint; its answer (any type) goes to
/// the original requester. A `fenced` answer means the owner moved on and
/// nothing happened: it waits for the next owner, within its deadline.
void to_peer(self_ptr self, pending_request req, const caf::actor& peer) {
  auto start = std::chrono::steady_clock::now();
  auto copy = req.msg; // kept for a retry (copy on write: no deep copy)
  auto h = self->request(peer, self->state.cfg.remote_timeout, forward_atom_v, req.key,
                         std::move(copy));
  auto shared = std::make_shared<pending_request>(std::move(req));
  auto& st = self->state;
  auto addr = peer.address();
  if (st.remote.count(addr) == 0)
    self->monitor(peer); // once per peer handle: its down message ends what it was asked
  auto id = ++st.next_remote;
  st.remote[addr].emplace(id, shared);
  auto on_answer = [self, shared, start, addr, id](caf::message answer) {
    auto& remote = self->state.remote;
    if (auto i = remote.find(addr); i != remote.end())
      if (i->second.erase(id) == 0)
        return; // answered already: its node went down meanwhile
    auto& m = remote_metrics::get();
    m.seconds->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (answer.match_elements<caf::error>()) {
      auto err = answer.get_as<caf::error>(0);
      if (to_errc(err) == errc::fenced && self->clock().now() < shared->deadline) {
        m.retried->Increment();
        wait_for_owner(self, std::move(*shared));
        return;
      }
      m.failed->Increment();
      if (err.category() == caf::atom("system")) { // no answer from the owner: it may have done it
        shared->rp.deliver(caf::make_error(errc::outcome_unknown,
                                           std::string{"the owning node did not answer"}));
        return;
      }
    } else {
      m.ok->Increment();
    }
    shared->rp.deliver(std::move(answer));
  };
  on_any_answer(self, h.id(), std::move(on_answer));
}

/// Local if this node holds the shard; else to its owner; else it waits.
void route(self_ptr self, pending_request req, bool forwarded) {
  if (owned_here(self, req.shard)) {
    to_entity(self, req);
    return;
  }
  if (forwarded) {
    remote_metrics::get().refused->Increment();
    req.rp.deliver(caf::make_error(errc::fenced, std::string{"this node does not own the shard"}));
    return;
  }
  auto& r = *self->state.routes;
  auto owner = req.shard < r.owner.size() ? r.owner[req.shard] : -1;
  if (owner >= 0 && r.peers[owner] && self->state.dead_peers.count(r.peers[owner].address()) == 0) {
    to_peer(self, std::move(req), r.peers[owner]);
    return;
  }
  if (auto& u = self->state.cfg.unreachable; u && u->load(std::memory_order_relaxed)) {
    req.rp.deliver(caf::make_error(errc::unavailable,
                                   std::string{"PostgreSQL is unreachable from this node"}));
    return;
  }
  wait_for_owner(self, std::move(req));
}

/// Requests waiting for an owner look again: served, sent on, or given up.
void pump(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  auto waiting = std::move(st.waiting);
  st.waiting.clear();
  for (auto& req : waiting) {
    if (now >= req.deadline) {
      req.rp.deliver(caf::make_error(errc::unavailable,
                                     std::string{"the owner of this key cannot be reached"}));
      continue;
    }
    route(self, std::move(req), false);
  }
  arm_retry(self);
}

/// An abnormal end: not a stop it agreed to (normal), not the node's
/// shutdown, not a fencing or version conflict (another writer: it recovers
/// from PostgreSQL on next use, as designed).
bool crashed(const caf::error& reason) {
  if (!reason || reason == caf::exit_reason::user_shutdown)
    return false;
  auto e = to_errc(reason);
  return e != errc::conflict && e != errc::fenced;
}

/// The entities of a shard actor that crashed have no home: nothing routes
/// to them any more, and their passivation requests would go nowhere. Each
/// is asked to stop as at a handoff (it agrees once no write of it is under
/// way), so a write it has in flight is still answered with its true
/// outcome and none lingers; the restarted shard actor starts fresh
/// instances, which recover from PostgreSQL (a version conflict settles an
/// overlap). One that never agrees is killed after a minute.
caf::behavior orphan_reaper(caf::event_based_actor* self, std::vector<caf::actor> orphans) {
  constexpr int32_t max_tries = 1200; // every 50 ms: a minute
  auto left = std::make_shared<size_t>(orphans.size());
  for (auto& a : orphans)
    self->send(self, tick_atom_v, a, int32_t{0});
  auto done = [self, left] {
    if (--*left == 0)
      self->quit();
  };
  return {
    [self, done](tick_atom, caf::actor& a, int32_t tries) {
      self->request(a, stop_timeout, handoff_atom_v)
        .then(
          [self, done, a, tries](bool stopping) {
            if (!stopping && tries < max_tries) {
              self->delayed_send(self, transit_retry, tick_atom_v, a, tries + 1);
              return;
            }
            if (!stopping) {
              log()->warn("event=orphan_killed detail=\"an entity of a crashed shard actor never "
                          "agreed to stop\"");
              self->send_exit(a, caf::exit_reason::kill);
            }
            done();
          },
          [self, done, a](caf::error& err) { // gone already, or stuck: either way not serving
            if (err != caf::sec::request_receiver_down)
              log()->warn("event=orphan_killed error={}", self->system().render(err));
            self->send_exit(a, caf::exit_reason::kill);
            done();
          });
    },
  };
}

/// Starts `key` again (wherever its shard lives now) and tells it to resume,
/// as cluster::tell does (resume_atom is not answered).
void restart(self_ptr self, const entity_key& key) {
  self->send(self, route_atom_v, key, caf::make_message(resume_atom_v));
}

/// Counts a crash of `key`; from the second in a row holds it broken for a
/// backoff; restarts an order (its saga must go on) at once or after it.
void on_crash(self_ptr self, const entity_key& key) {
  auto& st = self->state;
  auto now = self->clock().now();
  auto name = key.str();
  if (st.crashes.size() >= st.cfg.max_crash_records && st.crashes.count(name) == 0) {
    for (auto i = st.crashes.begin(); i != st.crashes.end();) // forget the settled ones
      i = now - i->second.last > st.cfg.entity_restart.stable_after ? st.crashes.erase(i) : std::next(i);
    if (st.crashes.size() >= st.cfg.max_crash_records)
      st.crashes.erase(st.crashes.begin());
  }
  auto& rec = st.crashes[name];
  rec.crashes = rec.crashes > 0 && now - rec.last <= st.cfg.entity_restart.stable_after ? rec.crashes + 1 : 1;
  rec.last = now;
  metrics::restarts(std::string{kind_name(key.kind)}).Increment();
  caf::timespan delay{0};
  if (rec.crashes > 1) {
    // Held at least half the backoff: a hold near zero would be no hold.
    delay = restart_delay(st.cfg.entity_restart, rec.crashes - 1, st.rng, jitter::upper_half);
    rec.broken_until = now + delay;
    log()->warn("event=entity_broken key={} crashes={} held_ms={}", name, rec.crashes,
                std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
  }
  if (key.kind != entity_kind::order)
    return; // the next request starts it again
  if (delay.count() == 0)
    return restart(self, key);
  self->delayed_send(self, delay, resume_atom_v, key);
}

pending_request make_request(self_ptr self, const entity_key& key, caf::message& msg) {
  return {key, shard_of_key(self, key), std::move(msg), self->make_response_promise(),
          self->clock().now() + self->state.cfg.transit_timeout};
}

/// Answers every request this shard actor holds (waiting for an owner,
/// buffered behind a stopping entity, out at a peer) before it goes down
/// with a crash: CAF 0.17 would drop them silently. None of the local ones
/// reached an entity (`unavailable`); one out at a peer may have been done
/// there (`outcome_unknown`).
void fail_held(self_ptr self) {
  auto& st = self->state;
  auto gone = [](const char* what) {
    return caf::make_error(errc::unavailable, std::string{what});
  };
  for (auto& req : st.waiting)
    req.rp.deliver(gone("the router went down; retry"));
  st.waiting.clear();
  for (auto& [key, e] : st.entities) {
    for (auto& [msg, rp] : e.buffered)
      rp.deliver(gone("the router went down; retry"));
    e.buffered.clear();
  }
  for (auto& [peer, reqs] : st.remote)
    for (auto& [id, req] : reqs)
      req->rp.deliver(caf::make_error(errc::outcome_unknown,
                                      std::string{"the router went down while a peer had it"}));
  st.remote.clear();
}

caf::behavior shard_behavior(self_ptr self, router_config cfg,
                             std::map<entity_kind, entity_factory> factories,
                             std::shared_ptr<shard_table> table) {
  auto& st = self->state;
  st.cfg = cfg;
  st.factories = std::move(factories);
  st.table = std::move(table);
  st.routes = st.table ? st.table->current_routes()
                       : std::make_shared<shard_table::routes>();
  auto sweep_every = cfg.passivate_after / 2;
  if (cfg.passivate_after.count() > 0)
    self->delayed_send(self, sweep_every, sweep_atom_v);
  self->attach_functor([&sys = self->system(), keys = st.keys](const caf::error& reason) {
    if (!crashed(reason))
      return; // a shutdown took the entities down with it (the exit handler)
    std::vector<caf::actor> orphans;
    for (auto& [addr, live] : *keys)
      orphans.push_back(std::move(live.second));
    keys->clear();
    if (!orphans.empty())
      sys.spawn(orphan_reaper, std::move(orphans));
  });
  self->set_exception_handler([self](std::exception_ptr& x) -> caf::error {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(x);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log()->error("event=router_crashed detail=\"{}\"", what);
    fail_held(self);
    return caf::make_error(errc::internal, std::move(what));
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Shutdown: take the entities down with us.
    for (auto& [key, e] : self->state.entities)
      self->send_exit(e.actor, msg.reason);
    self->quit(msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto k = st.keys->find(dm.source);
    if (k == st.keys->end()) {
      // A peer: what it was asked and has not answered, it never will.
      if (auto r = st.remote.find(dm.source); r != st.remote.end()) {
        auto lost = std::move(r->second);
        st.remote.erase(r); // a new handle to a restarted peer is monitored anew
        st.dead_peers.insert(dm.source);
        for (auto& [id, req] : lost) { // it may have done them: the outcome is not known
          remote_metrics::get().failed->Increment();
          req->rp.deliver(caf::make_error(errc::outcome_unknown,
                                          std::string{"the node owning this key went down"}));
        }
      }
      return;
    }
    auto key = std::move(k->second.first);
    st.keys->erase(k);
    auto e = st.entities.find(key.str());
    if (e == st.entities.end())
      return;
    if (crashed(dm.reason)) {
      log()->warn("event=entity_down key={} reason={}", key.str(), self->system().render(dm.reason));
      on_crash(self, key);
    }
    // Requests that waited for the old instance to finish go where the key
    // lives now: a fresh instance here (it recovers from what the old one
    // made durable), or the shard's new owner.
    auto buffered = std::move(e->second.buffered);
    auto shard = e->second.shard;
    st.entities.erase(e);
    for (auto& [msg, rp] : buffered)
      route(self,
            pending_request{key, shard, std::move(msg), std::move(rp),
                            self->clock().now() + st.cfg.transit_timeout},
            false);
  });
  return {
    [self](route_atom, const entity_key& key, caf::message& msg) {
      self->state.mailbox.tick(self);
      route(self, make_request(self, key, msg), false);
    },
    [self](forward_atom, const entity_key& key, caf::message& msg) {
      route(self, make_request(self, key, msg), true);
    },
    [self](handoff_atom, const std::vector<uint32_t>& shards) -> uint64_t {
      // The coordinator moves these shards away: it no longer counts them as
      // held, so no new request reaches their entities; each entity stops
      // once no write of it is under way. Asked again until none is left.
      std::set<uint32_t> moving(shards.begin(), shards.end());
      uint64_t left = 0;
      for (auto& [key, e] : self->state.entities)
        if (moving.count(e.shard) > 0) {
          ++left;
          try_stop(self, key, e, handoff_atom_v);
        }
      return left;
    },
    [self](owners_atom) {
      if (self->state.table)
        self->state.routes = self->state.table->current_routes();
      self->state.dead_peers.clear();
      pump(self);
    },
    [self](tick_atom) {
      self->state.retry_armed = false;
      pump(self);
    },
    [](crash_atom) { // the failure-injection hook: a crash as a bug would make it
      throw std::runtime_error("crash injected by the failure hook");
    },
    [self](crash_atom, const entity_key& key) { // the failure-injection hook
      if (auto e = self->state.entities.find(key.str()); e != self->state.entities.end())
        self->send_exit(e->second.actor, caf::exit_reason::kill);
    },
    [self](resume_atom, const entity_key& key) { // an order's restart backoff ended
      if (self->state.entities.count(key.str()) == 0)
        restart(self, key);
    },
    [self, sweep_every](sweep_atom) {
      auto& st = self->state;
      auto now = self->clock().now();
      for (auto& [key, e] : st.entities)
        if (now - e.last_used >= st.cfg.passivate_after)
          try_stop(self, key, e, passivate_atom_v);
      self->delayed_send(self, sweep_every, sweep_atom_v);
    },
    [self](passivate_atom, const caf::actor_addr& who) {
      // An entity with nothing stored asks to be stopped (it must not quit by
      // itself: a request may already be on its way to it).
      auto& st = self->state;
      auto k = st.keys->find(who);
      if (k == st.keys->end())
        return;
      if (auto e = st.entities.find(k->second.first.str()); e != st.entities.end())
        try_stop(self, e->first, e->second, passivate_atom_v);
    },
  };
}

/// What peers talk to: forwarded requests go to the shard actor of their
/// key; live changes made on other nodes go to this node's feed.
caf::behavior endpoint_behavior(caf::event_based_actor* self,
                                std::shared_ptr<const actor_group> shard_actors, uint32_t shards,
                                std::shared_ptr<live_feed> feed) {
  auto coordinator = std::make_shared<caf::actor>();
  return {
    [coordinator](owners_atom, caf::actor& c) { *coordinator = std::move(c); },
    [self, coordinator](dial_atom a, std::string& id, std::string& inc, caf::actor& peer) {
      if (*coordinator) // a peer introduces itself
        self->send(*coordinator, a, std::move(id), std::move(inc), std::move(peer));
    },
    [self, shard_actors, shards](forward_atom, const entity_key& key, caf::message& msg) {
      auto target = (*shard_actors)[cluster::shard_of(key, shards) % shard_actors->size()];
      self->delegate(target, forward_atom_v, key, std::move(msg));
    },
    [feed](forward_atom, const stock_level& l) {
      remote_metrics::get().feed_in->Increment();
      if (feed)
        feed->stock_changed(l, false);
    },
    [feed](forward_atom, const order_view& o) {
      remote_metrics::get().feed_in->Increment();
      if (feed)
        feed->order_changed(o, false);
    },
  };
}

/// Broadcasts this node's durable changes to every connected peer, so a
/// storefront WebSocket on any node sees every key (docs/cluster.md).
caf::behavior relay_behavior(caf::event_based_actor* self, std::shared_ptr<shard_table> table) {
  auto peers = std::make_shared<std::vector<caf::actor>>();
  auto send_all = [self, peers](auto&& x) {
    for (auto& p : *peers)
      if (p) {
        self->send(p, forward_atom_v, x);
        remote_metrics::get().feed_out->Increment();
      }
  };
  return {
    [peers, table](owners_atom) { *peers = table->current_routes()->peers; },
    [send_all](forward_atom, const stock_level& l) { send_all(l); },
    [send_all](forward_atom, const order_view& o) { send_all(o); },
  };
}

} // namespace

entity_router::entity_router(caf::actor_system& sys, router_config cfg,
                             std::map<entity_kind, entity_factory> factories,
                             std::shared_ptr<shard_table> table, std::shared_ptr<live_feed> feed)
  : cfg_(cfg),
    shard_actors_(std::make_shared<actor_group>(
      sys, "entity_router", cfg.shard_actors,
      [cfg, factories, table](caf::actor_system& s, size_t) {
        return s.spawn(shard_behavior, cfg, factories, table);
      },
      cfg.restart)) {
  endpoint_ = sys.spawn(endpoint_behavior, shard_actors_, cfg.shards, feed);
  if (table && feed) {
    relay_ = spawn_supervised(
      sys, "feed_relay", [table](caf::actor_system& s) { return s.spawn(relay_behavior, table); },
      cfg.restart);
    auto relay = relay_;
    feed->set_fanout({[relay](const stock_level& l) { caf::anon_send(relay, forward_atom_v, l); },
                      [relay](const order_view& o) { caf::anon_send(relay, forward_atom_v, o); }});
  }
}

void entity_router::stop() {
  shard_actors_->stop();
  caf::anon_send_exit(endpoint_, caf::exit_reason::user_shutdown);
  if (relay_)
    caf::anon_send_exit(relay_, caf::exit_reason::user_shutdown);
}

uint32_t entity_router::shard_of(const entity_key& key) const noexcept {
  return cluster::shard_of(key, cfg_.shards);
}

protocols::entity_resolver entity_router::resolver() const {
  return [this](const entity_key& key) { return shard_for(key); };
}

caf::actor entity_router::shard_for(const entity_key& key) const {
  return (*shard_actors_)[shard_of(key) % shard_actors_->size()];
}

} // namespace emporium::cluster
