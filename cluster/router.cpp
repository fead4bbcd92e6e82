#include "cluster/router.hpp"

#include "protocols/errc.hpp"
#include "protocols/logging.hpp"
#include "protocols/metrics.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <unordered_map>

namespace emporium::cluster {

using namespace protocols;

namespace {

spdlog::logger* log() {
  static auto instance = named_logger("cluster");
  return instance.get();
}

struct entry {
  caf::actor actor;
  caf::actor_clock::time_point last_used;
  bool passivating = false;
  /// Requests that arrived while the entity was deciding whether to stop.
  std::vector<std::pair<caf::message, caf::response_promise>> buffered;
};

struct shard_state {
  static inline const char* name = "entity_router";
  std::unordered_map<std::string, entry> entities; ///< by key.str()
  std::unordered_map<caf::actor_addr, entity_key> keys; ///< of the live entities
  std::map<entity_kind, entity_factory> factories;
  router_config cfg;
};

using self_ptr = caf::stateful_actor<shard_state>*;

/// Requests buffered for one entity while it decides whether to stop; beyond
/// this, 503 at once (every queue is bounded).
constexpr size_t max_buffered = 1024;

/// How long an entity may take to say whether it stops.
constexpr auto passivate_timeout = std::chrono::seconds{10};

caf::actor spawn_entity(self_ptr self, const entity_key& key) {
  auto i = self->state.factories.find(key.kind);
  if (i == self->state.factories.end())
    return {};
  auto a = i->second(self->system(), key.id, caf::actor_cast<caf::actor>(self));
  self->monitor(a);
  self->state.keys[a.address()] = key;
  return a;
}


void flush_buffered(entry& e) {
  for (auto& [msg, rp] : e.buffered)
    rp.delegate(e.actor, std::move(msg));
  e.buffered.clear();
}

/// The entity stays: it serves again, starting with what was buffered.
void keep(self_ptr self, const std::string& key) {
  auto& st = self->state;
  if (auto i = st.entities.find(key); i != st.entities.end() && i->second.passivating) {
    i->second.passivating = false;
    i->second.last_used = self->clock().now();
    flush_buffered(i->second);
  }
}

/// Asks the entity whether it may stop; requests for it wait in the router
/// meanwhile, so none reaches an instance that is stopping. Agreed: its down
/// message finishes the job. Refused, or no answer in time: it serves again.
void try_passivate(self_ptr self, const std::string& key, entry& e) {
  if (e.passivating)
    return;
  e.passivating = true;
  self->request(e.actor, passivate_timeout, passivate_atom_v)
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

caf::behavior shard_behavior(self_ptr self, router_config cfg,
                             std::map<entity_kind, entity_factory> factories) {
  self->state.cfg = cfg;
  self->state.factories = std::move(factories);
  auto sweep_every = cfg.passivate_after / 2;
  if (cfg.passivate_after.count() > 0)
    self->delayed_send(self, sweep_every, sweep_atom_v);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Shutdown: take the entities down with us.
    for (auto& [key, e] : self->state.entities)
      self->send_exit(e.actor, msg.reason);
    self->quit(msg.reason);
  });
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    auto k = st.keys.find(dm.source);
    if (k == st.keys.end())
      return;
    auto key = std::move(k->second);
    st.keys.erase(k);
    auto e = st.entities.find(key.str());
    if (e == st.entities.end())
      return;
    if (dm.reason && dm.reason != caf::exit_reason::user_shutdown)
      log()->warn("event=entity_down key={} reason={}", key.str(), self->system().render(dm.reason));
    if (e->second.buffered.empty()) {
      st.entities.erase(e);
      return;
    }
    // Requests waited for the old instance to finish: start a fresh one,
    // which recovers from what the old one made durable.
    e->second.actor = spawn_entity(self, key);
    e->second.passivating = false;
    e->second.last_used = self->clock().now();
    flush_buffered(e->second);
  });
  return {
    [self](route_atom, const entity_key& k, caf::message& msg) {
      auto& st = self->state;
      auto key = k.str();
      auto i = st.entities.find(key);
      if (i == st.entities.end()) {
        auto a = spawn_entity(self, k);
        if (!a) {
          auto rp = self->make_response_promise();
          rp.deliver(caf::make_error(errc::not_found, std::string{"unknown entity kind"}));
          return;
        }
        i = st.entities.emplace(key, entry{std::move(a), {}, false, {}}).first;
      }
      auto& e = i->second;
      if (e.passivating) {
        auto rp = self->make_response_promise();
        if (e.buffered.size() >= max_buffered) {
          rp.deliver(caf::make_error(errc::unavailable, std::string{"entity is busy stopping"}));
          return;
        }
        e.buffered.emplace_back(std::move(msg), std::move(rp));
        return;
      }
      e.last_used = self->clock().now();
      self->delegate(e.actor, std::move(msg));
    },
    [self, sweep_every](sweep_atom) {
      auto& st = self->state;
      auto now = self->clock().now();
      for (auto& [key, e] : st.entities)
        if (now - e.last_used >= st.cfg.passivate_after)
          try_passivate(self, key, e);
      self->delayed_send(self, sweep_every, sweep_atom_v);
    },
    [self](passivate_atom, const caf::actor_addr& who) {
      // An entity with nothing stored asks to be stopped (it must not quit by
      // itself: a request may already be on its way to it).
      auto& st = self->state;
      auto k = st.keys.find(who);
      if (k == st.keys.end())
        return;
      if (auto e = st.entities.find(k->second.str()); e != st.entities.end())
        try_passivate(self, e->first, e->second);
    },
  };
}

} // namespace

entity_router::entity_router(caf::actor_system& sys, router_config cfg,
                             std::map<entity_kind, entity_factory> factories)
  : cfg_(cfg) {
  for (size_t i = 0; i < cfg.shard_actors; ++i)
    shard_actors_.push_back(sys.spawn(shard_behavior, cfg, factories));
}

void entity_router::stop() {
  for (auto& a : shard_actors_)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

uint32_t entity_router::shard_of(const entity_key& key) const noexcept {
  uint32_t h = 2166136261u; // FNV-1a of "kind:id": stable across processes and builds
  auto hash = [&h](std::string_view part) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 16777619u;
    }
  };
  hash(kind_name(key.kind));
  hash(":");
  hash(key.id);
  return h % cfg_.shards;
}

protocols::entity_resolver entity_router::resolver() const {
  return [this](const entity_key& key) { return shard_for(key); };
}

const caf::actor& entity_router::shard_for(const entity_key& key) const noexcept {
  return shard_actors_[shard_of(key) % shard_actors_.size()];
}

} // namespace emporium::cluster
