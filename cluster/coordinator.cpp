#include "cluster/coordinator.hpp"

#include "cluster/assignment.hpp"
#include "protocols/errc.hpp"
#include "protocols/logging.hpp"
#include "protocols/metrics.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <map>
#include <set>

namespace emporium::cluster {

using namespace protocols;

namespace {

spdlog::logger* log() {
  static auto instance = named_logger("cluster");
  return instance.get();
}

struct coordinator_metrics {
  prometheus::Gauge* owned;
  prometheus::Counter* renewals;
  prometheus::Counter* renewal_failures;
  prometheus::Counter* acquired;
  prometheus::Counter* lost;
  prometheus::Counter* handoffs;
  prometheus::Histogram* handoff_seconds;

  static coordinator_metrics& get() {
    static coordinator_metrics instance = [] {
      auto& reg = metrics::registry();
      auto& owned = prometheus::BuildGauge()
                      .Name("emporium_shards_owned")
                      .Help("Shards this node holds a lease on")
                      .Register(reg);
      auto& rounds = prometheus::BuildCounter()
                       .Name("emporium_lease_renewals_total")
                       .Help("Membership rounds (heartbeat and lease renewal), by outcome")
                       .Register(reg);
      auto& shards = prometheus::BuildCounter()
                       .Name("emporium_shard_moves_total")
                       .Help("Shards acquired, lost (lease lapsed) and handed off by this node")
                       .Register(reg);
      auto& took = prometheus::BuildHistogram()
                     .Name("emporium_handoff_seconds")
                     .Help("From deciding to hand shards off to releasing their leases")
                     .Register(reg);
      return coordinator_metrics{
        &owned.Add({}),
        &rounds.Add({{"outcome", "ok"}}),
        &rounds.Add({{"outcome", "failed"}}),
        &shards.Add({{"move", "acquired"}}),
        &shards.Add({{"move", "lost"}}),
        &shards.Add({{"move", "handed_off"}}),
        &took.Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2,
                                                              5, 10, 30})};
    }();
    return instance;
  }
};

struct peer {
  std::string incarnation;
  std::string address;
  caf::actor endpoint;
  bool dialing = false;
};

struct coordinator_state {
  static inline const char* name = "cluster_coordinator";
  coordinator_config cfg;
  membership_actor membership;
  std::shared_ptr<shard_table> table;
  shard_actors_fn shard_actors; ///< the router's current shard actors (none in tests)
  caf::actor dialer;
  std::string status = "joining";
  std::map<uint32_t, int64_t> held;   ///< shard -> epoch, lease renewed by the last round
  std::set<uint32_t> desired;          ///< assigned to this node by the last round
  std::set<uint32_t> moving;           ///< handing off: dropped from the table, entities stopping
  std::vector<uint32_t> to_release;    ///< handed off, released by the next round
  std::chrono::steady_clock::time_point handoff_started;
  std::map<std::string, peer> peers;   ///< by node id
  bool round_in_flight = false;
  /// After a peer went down: rounds every lease/10 until then, so its shards
  /// are taken soon after its leases lapse, not up to a round later.
  std::chrono::steady_clock::time_point fast_until;
  bool asking_router = false;
  bool left = false;
};

using self_ptr = caf::stateful_actor<coordinator_state>*;

std::chrono::milliseconds round_every(const coordinator_config& cfg) {
  return std::max(std::chrono::milliseconds{20}, cfg.lease / 3);
}

/// Until when a lease renewed by a round sent at `sent` surely holds: PostgreSQL
/// set its expiry to (its now, after `sent`) + lease; a fifth is kept back
/// for clock rate differences and the time to stop serving.
std::chrono::steady_clock::time_point valid_until(const coordinator_config& cfg,
                                                  std::chrono::steady_clock::time_point sent) {
  return sent + cfg.lease * 4 / 5;
}

void round(self_ptr self);

std::vector<caf::actor> shard_actors(self_ptr self) {
  return self->state.shard_actors ? self->state.shard_actors() : std::vector<caf::actor>{};
}

void notify_router(self_ptr self) {
  for (auto& a : shard_actors(self))
    self->send(a, owners_atom_v);
  for (auto& a : self->state.cfg.also_notify)
    self->send(a, owners_atom_v);
}

/// Asks the shard actors to stop the entities of the moving shards; once none
/// is left they are released by the next round.
void continue_handoff(self_ptr self) {
  auto& st = self->state;
  if (st.moving.empty() || st.asking_router)
    return;
  auto router = shard_actors(self);
  if (router.empty()) { // nothing hosts entities here (tests)
    for (auto s : st.moving)
      if (st.held.count(s) > 0)
        st.to_release.push_back(s);
    st.moving.clear();
    return;
  }
  st.asking_router = true;
  std::vector<uint32_t> shards(st.moving.begin(), st.moving.end());
  auto left = std::make_shared<uint64_t>(0);
  auto pending = std::make_shared<size_t>(router.size());
  for (auto& a : router)
    self->request(a, std::chrono::seconds{10}, handoff_atom_v, shards)
      .then(
        [self, left, pending, shards](uint64_t n) {
          *left += n;
          if (--*pending > 0)
            return;
          auto& st = self->state;
          st.asking_router = false;
          if (*left > 0) {
            self->delayed_send(self, std::chrono::milliseconds{20}, handoff_atom_v);
            return;
          }
          for (auto s : shards)
            if (st.moving.erase(s) > 0 && st.held.count(s) > 0)
              st.to_release.push_back(s);
          if (st.moving.empty())
            coordinator_metrics::get().handoff_seconds->Observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - st.handoff_started)
                .count());
          round(self); // release now: the next owner is waiting
        },
        [self](caf::error&) {
          self->state.asking_router = false;
          self->delayed_send(self, std::chrono::milliseconds{20}, handoff_atom_v);
        });
}

/// One connection per pair of nodes: the one with the smaller id dials and
/// introduces itself (its endpoint) over it; CAF closes one of two
/// connections opened both ways at once, which took the proxies made through
/// it down (measured: a flapping pair).
void dial(self_ptr self, const member& m) {
  auto& p = self->state.peers[m.id];
  if (p.incarnation != m.incarnation)
    p = peer{m.incarnation, m.cluster_address, {}, false};
  p.address = m.cluster_address;
  if (p.endpoint || p.dialing || !(self->state.cfg.self.id < m.id))
    return;
  auto colon = m.cluster_address.rfind(':');
  if (colon == std::string::npos)
    return;
  p.dialing = true;
  auto host = m.cluster_address.substr(0, colon);
  auto port = static_cast<uint16_t>(std::stoi(m.cluster_address.substr(colon + 1)));
  auto id = m.id;
  auto inc = m.incarnation;
  self->request(self->state.dialer, std::chrono::seconds{10}, dial_atom_v, host, port)
    .then(
      [self, id, inc](caf::actor& endpoint) {
        auto& p = self->state.peers[id];
        p.dialing = false;
        if (p.incarnation != inc)
          return;
        self->monitor(endpoint);
        auto& me = self->state.cfg.self;
        self->send(endpoint, dial_atom_v, me.id, me.incarnation, self->state.cfg.endpoint);
        p.endpoint = std::move(endpoint);
        log()->info("event=peer_connected node={} address={}", id, p.address);
        round(self); // routes to it now
      },
      [self, id](caf::error& err) {
        self->state.peers[id].dialing = false;
        log()->warn("event=peer_unreachable node={} error={}", id,
                    self->system().render(err));
      });
}

void apply(self_ptr self, const cluster_state& cs, std::chrono::steady_clock::time_point sent,
           const std::vector<uint32_t>& released) {
  auto& st = self->state;
  for (auto s : released)
    st.held.erase(s);
  auto& m = coordinator_metrics::get();
  const auto& me = st.cfg.self;
  // Our leases as PostgreSQL has them now.
  std::map<uint32_t, int64_t> mine;
  for (auto& l : cs.leases)
    if (l.live && l.incarnation == me.incarnation)
      mine.emplace(l.shard, l.epoch);
  std::vector<uint32_t> acquired;
  for (auto& [s, epoch] : mine)
    if (st.held.count(s) == 0)
      acquired.push_back(s);
  for (auto& [s, epoch] : st.held)
    if (mine.count(s) == 0 && st.moving.count(s) == 0) {
      // Lapsed (a round that came too late): stop serving it at once.
      m.lost->Increment();
      log()->warn("event=lease_lost shard={} epoch={}", s, epoch);
      st.table->drop(s);
      st.moving.insert(s);
    }
  st.held = mine;
  m.acquired->Increment(static_cast<double>(acquired.size()));

  // The assignment over the members that may own shards.
  std::vector<std::string> owners;
  bool drain = false;
  for (auto& x : cs.members) {
    if (x.id == me.id && x.incarnation == me.incarnation)
      drain = x.drain_requested;
    if (x.alive && (x.status == "joining" || x.status == "up"))
      owners.push_back(x.id);
  }
  if (drain && st.status != "draining" && st.status != "left") {
    log()->info("event=drain_requested node={}", me.id);
    st.status = "draining";
  }
  st.desired.clear();
  if (st.status != "draining" && st.status != "left")
    for (auto s : assigned_to(me.id, owners, st.cfg.shards))
      st.desired.insert(s);

  // Renewed leases we keep; the others move away.
  auto until = valid_until(st.cfg, sent);
  for (auto& [s, epoch] : st.held) {
    if (st.moving.count(s) > 0)
      continue;
    if (st.desired.count(s) > 0) {
      st.table->hold(s, epoch, until);
    } else {
      if (st.moving.empty())
        st.handoff_started = std::chrono::steady_clock::now();
      st.table->drop(s);
      st.moving.insert(s);
      m.handoffs->Increment();
    }
  }
  m.owned->Set(static_cast<double>(st.table->owned_count(self->clock().now())));

  // Routes to the owners of the other shards.
  auto r = std::make_shared<shard_table::routes>();
  r->owner.assign(st.cfg.shards, -1);
  std::map<std::string, int32_t> index;
  for (auto& x : cs.members) {
    if (x.id == me.id || !x.alive || x.status == "left")
      continue;
    dial(self, x);
    index[x.id] = static_cast<int32_t>(r->nodes.size());
    r->nodes.push_back(x.id);
    r->peers.push_back(st.peers[x.id].endpoint);
  }
  for (auto& l : cs.leases)
    if (l.live && l.incarnation != me.incarnation && l.shard < st.cfg.shards)
      if (auto i = index.find(l.node); i != index.end())
        r->owner[l.shard] = i->second;
  st.table->set_routes(std::move(r));
  notify_router(self);
  continue_handoff(self);

  // Status.
  bool holds_all = std::all_of(st.desired.begin(), st.desired.end(),
                               [&](uint32_t s) { return st.held.count(s) > 0; });
  if (st.status == "joining" && holds_all) {
    st.status = "up";
    log()->info("event=node_up node={} shards={}", me.id, st.held.size());
  }
  st.table->ready = st.status == "up" && holds_all;
  if (st.status == "draining" && st.held.empty() && st.moving.empty() && !st.left) {
    st.status = "left";
    st.left = true;
    auto took = std::chrono::duration<double>(std::chrono::steady_clock::now()
                                              - st.handoff_started).count();
    log()->info("event=node_left node={} handoff_seconds={:.3f}", me.id, took);
    round(self); // writes `left`, then on_left
  }
  st.table->set_snapshot({me.id, st.status, cs});
  if (!acquired.empty() && st.cfg.on_acquired)
    st.cfg.on_acquired(acquired);
}

void round(self_ptr self) {
  auto& st = self->state;
  if (st.round_in_flight)
    return;
  st.round_in_flight = true;
  cluster_tick t;
  t.self = st.cfg.self;
  t.self.status = st.status;
  t.self.actors = st.cfg.actor_count ? st.cfg.actor_count() : 0;
  t.lease_ms = st.cfg.lease.count();
  t.release = std::move(st.to_release);
  st.to_release.clear();
  auto released = t.release;
  auto status_sent = t.self.status;
  if (st.status == "joining" || st.status == "up")
    for (auto s : st.desired)
      if (st.held.count(s) == 0 && st.moving.count(s) == 0)
        t.acquire.push_back(s);
  auto sent = self->clock().now(); // the actor clock: tests move it
  self->request(st.membership, st.cfg.lease, std::move(t))
    .then(
      [self, sent, released, status_sent](cluster_state& cs) {
        self->state.round_in_flight = false;
        coordinator_metrics::get().renewals->Increment();
        if (status_sent == "left") {
          // Linger one lease before saying so: peers whose routes still name
          // this node get `fenced` answers (and retry at the new owner) rather
          // than a closed connection, whose lost requests they could not
          // tell from requests a crash interrupted.
          self->state.table->set_snapshot({self->state.cfg.self.id, "left", cs});
          self->delayed_send(self, self->state.cfg.lease, drain_atom_v, true);
          return;
        }
        apply(self, cs, sent, released);
      },
      [self, released](caf::error& err) {
        auto& st = self->state;
        st.round_in_flight = false;
        st.to_release.insert(st.to_release.end(), released.begin(), released.end());
        coordinator_metrics::get().renewal_failures->Increment();
        log()->warn("event=membership_round_failed error={}", self->system().render(err));
        // Leases lapse by themselves in the table (valid_until); stop the
        // entities of those already lapsed.
        for (auto& [s, epoch] : st.held)
          if (!st.table->owned(s, self->clock().now()) && st.moving.count(s) == 0) {
            coordinator_metrics::get().lost->Increment();
            st.moving.insert(s);
          }
        st.table->ready = false;
        continue_handoff(self);
      });
}

caf::behavior coordinator(self_ptr self, coordinator_config cfg, membership_actor membership,
                          std::shared_ptr<shard_table> table, shard_actors_fn shard_actors,
                          peer_connector connect) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.membership = std::move(membership);
  st.table = std::move(table);
  st.shard_actors = std::move(shard_actors);
  auto dialer = [connect](caf::event_based_actor*) -> caf::behavior {
    return {[connect](dial_atom, const std::string& host, uint16_t port) -> caf::result<caf::actor> {
      auto x = connect(host, port);
      if (!x)
        return x.error();
      return std::move(*x);
    }};
  };
  st.dialer = st.cfg.dial_in_own_thread ? self->system().spawn<caf::detached>(dialer)
                                        : self->system().spawn(dialer);
  self->link_to(st.dialer);
  self->set_down_handler([self](caf::down_msg& dm) {
    for (auto& [id, p] : self->state.peers)
      if (p.endpoint && p.endpoint.address() == dm.source) {
        log()->warn("event=peer_down node={}", id);
        p.endpoint = nullptr;
      }
    // Routes without it from the next round on (redialled then, if it is
    // alive); its shards are taken once its leases lapse.
    self->state.fast_until = self->clock().now() + 2 * self->state.cfg.lease;
  });
  self->send(self, tick_atom_v);
  return {
    [self](tick_atom) {
      if (self->state.left)
        return;
      round(self);
      auto& st = self->state;
      auto fast = self->clock().now() < st.fast_until;
      self->delayed_send(self, fast ? std::max(std::chrono::milliseconds{10}, st.cfg.lease / 10)
                                    : round_every(st.cfg),
                         tick_atom_v);
    },
    [self](handoff_atom) { continue_handoff(self); },
    [self](dial_atom, const std::string& id, const std::string& incarnation, caf::actor& endpoint) {
      // A peer with a smaller id dialled us and introduced its endpoint.
      auto& p = self->state.peers[id];
      if (p.incarnation != incarnation)
        p = peer{incarnation, {}, {}, false};
      self->monitor(endpoint);
      p.endpoint = std::move(endpoint);
      log()->info("event=peer_connected node={} via=its_dial", id);
    },
    [self](drain_atom, bool) {
      if (self->state.cfg.on_left)
        self->state.cfg.on_left();
    },
    [self](drain_atom) {
      auto& st = self->state;
      if (st.status == "draining" || st.status == "left")
        return;
      log()->info("event=draining node={} shards={}", st.cfg.self.id, st.held.size());
      st.status = "draining";
      round(self);
    },
  };
}

} // namespace

caf::actor spawn_coordinator(caf::actor_system& sys, coordinator_config cfg,
                             protocols::membership_actor membership,
                             std::shared_ptr<shard_table> table,
                             shard_actors_fn shard_actors, peer_connector connect) {
  return sys.spawn(coordinator, std::move(cfg), std::move(membership), std::move(table),
                   std::move(shard_actors), std::move(connect));
}

} // namespace emporium::cluster
