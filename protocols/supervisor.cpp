#include "protocols/supervisor.hpp"

#include "protocols/any_answer.hpp"
#include "protocols/errc.hpp"
#include "protocols/logging.hpp"
#include "protocols/metrics.hpp"
#include "protocols/type_ids.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <unordered_map>

namespace emporium::protocols {

namespace {

spdlog::logger* log() {
  static auto instance = named_logger("supervisor");
  return instance.get();
}

struct supervisor_state {
  static inline const char* name = "supervisor";
  std::string kind;
  std::function<caf::actor(caf::actor_system&)> spawn;
  restart_policy policy;
  caf::actor child;             ///< null while restarting
  /// Requests passed on and not answered yet: answered `unavailable` if the
  /// child dies (CAF 0.17 drops a dead actor's promises silently).
  std::unordered_map<uint64_t, caf::response_promise> outstanding;
  uint64_t next_id = 0;
  size_t max_outstanding = 0;
  int crashes = 0;              ///< in a row
  caf::actor_clock::time_point started;
  std::minstd_rand rng;
};

using self_ptr = caf::stateful_actor<supervisor_state>*;

void start_child(self_ptr self) {
  auto& st = self->state;
  st.child = st.spawn(self->system());
  st.started = self->clock().now();
  self->monitor(st.child);
}

} // namespace

caf::timespan restart_delay(const restart_policy& p, int crashes, std::minstd_rand& rng,
                            jitter j) {
  auto cap = std::min<int64_t>(p.max.count(), p.base.count() << std::clamp(crashes - 1, 0, 30));
  auto floor = j == jitter::upper_half ? cap / 2 : 0;
  return caf::timespan{std::uniform_int_distribution<int64_t>{floor, cap}(rng)};
}

caf::actor spawn_supervised(caf::actor_system& sys, std::string kind,
                            std::function<caf::actor(caf::actor_system&)> spawn,
                            restart_policy policy, size_t max_outstanding) {
  auto fn = [](self_ptr self, std::string kind, std::function<caf::actor(caf::actor_system&)> spawn,
               restart_policy policy, size_t max_outstanding) -> caf::behavior {
    auto& st = self->state;
    st.max_outstanding = max_outstanding;
    st.kind = std::move(kind);
    st.spawn = std::move(spawn);
    st.policy = policy;
    st.rng.seed(policy.seed != 0 ? policy.seed : std::random_device{}());
    start_child(self);
    self->set_default_handler([](caf::scheduled_actor* ptr,
                                 caf::message_view& x) -> caf::result<caf::message> {
      auto self = static_cast<self_ptr>(ptr);
      auto& child = self->state.child;
      if (!child) {
        if (self->current_message_id().is_request())
          return caf::make_error(errc::unavailable,
                                 self->state.kind + " is restarting after a crash");
        return caf::message{};
      }
      auto msg = x.move_content_to_message();
      if (!self->current_message_id().is_request()) {
        self->send(child, std::move(msg));
        return caf::message{};
      }
      auto& st = self->state;
      if (st.outstanding.size() >= st.max_outstanding)
        return caf::make_error(errc::unavailable, st.kind + " has too many requests waiting");
      auto id = ++st.next_id;
      st.outstanding.emplace(id, self->make_response_promise());
      auto h = self->request(child, caf::infinite, std::move(msg));
      on_any_answer(self, h.id(), [self, id](caf::message answer) {
        auto& out = self->state.outstanding;
        if (auto i = out.find(id); i != out.end()) {
          i->second.deliver(std::move(answer));
          out.erase(i);
        }
      });
      return caf::delegated<caf::message>{};
    });
    self->set_exit_handler([self](caf::exit_msg& msg) {
      if (self->state.child)
        self->send_exit(self->state.child, msg.reason);
      self->quit(msg.reason);
    });
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& st = self->state;
      if (!st.child || dm.source != st.child.address())
        return;
      st.child = nullptr;
      for (auto& [id, rp] : st.outstanding)
        rp.deliver(caf::make_error(errc::unavailable, st.kind + " went down while answering"));
      st.outstanding.clear();
      if (!dm.reason || dm.reason == caf::exit_reason::user_shutdown)
        return self->quit(dm.reason);
      auto now = self->clock().now();
      st.crashes = now - st.started >= st.policy.stable_after ? 1 : st.crashes + 1;
      auto delay = restart_delay(st.policy, st.crashes, st.rng);
      metrics::restarts(st.kind).Increment();
      log()->error("event=actor_crashed kind={} crashes={} restart_in_ms={} reason={}", st.kind,
                   st.crashes, std::chrono::duration_cast<std::chrono::milliseconds>(delay).count(),
                   self->system().render(dm.reason));
      self->delayed_send(self, delay, resume_atom_v, st.kind); // kind: not a message the child takes
    });
    return {
      [self](crash_atom) { // the failure-injection hook
        if (self->state.child)
          self->send_exit(self->state.child, caf::exit_reason::kill);
      },
      [self](resume_atom, const std::string&) {
        if (!self->state.child) {
          start_child(self);
          log()->info("event=actor_restarted kind={}", self->state.kind);
        }
      },
    };
  };
  return sys.spawn(fn, std::move(kind), std::move(spawn), policy, max_outstanding);
}

namespace {

struct group_state {
  static inline const char* name = "actor_group";
  std::string kind;
  actor_group::spawner spawn;
  restart_policy policy;
  std::minstd_rand rng;
  std::function<void(size_t, caf::actor)> publish; ///< into the group's slot
  std::vector<caf::actor> members;                  ///< by slot: the instance watched
  std::vector<int> crashes;                         ///< by slot, in a row
  std::vector<caf::actor_clock::time_point> started;
  bool stopping = false;
};

using group_ptr = caf::stateful_actor<group_state>*;

void start_member(group_ptr self, size_t i) {
  auto& st = self->state;
  auto a = st.spawn(self->system(), i);
  self->monitor(a);
  st.members[i] = a;
  st.started[i] = self->clock().now();
  st.publish(i, std::move(a));
}

} // namespace

actor_group::actor_group(caf::actor_system& sys, std::string kind, size_t n, spawner spawn,
                         restart_policy policy)
  : n_(n), slots_(new slot[n]) {
  auto slots = slots_;
  auto publish = [slots](size_t i, caf::actor a) {
    slots[i].current.store(std::make_shared<const caf::actor>(std::move(a)));
  };
  // Spawned here, not by the watcher, so every slot is filled on return.
  std::vector<caf::actor> first;
  for (size_t i = 0; i < n; ++i) {
    first.push_back(spawn(sys, i));
    publish(i, first.back());
  }
  auto fn = [](group_ptr self, std::string kind, spawner spawn, restart_policy policy,
               std::function<void(size_t, caf::actor)> publish,
               std::vector<caf::actor> first) -> caf::behavior {
    auto& st = self->state;
    st.kind = std::move(kind);
    st.spawn = std::move(spawn);
    st.policy = policy;
    st.rng.seed(policy.seed != 0 ? policy.seed : std::random_device{}());
    st.publish = std::move(publish);
    st.crashes.assign(first.size(), 0);
    st.started.assign(first.size(), self->clock().now());
    for (auto& a : first)
      self->monitor(a);
    st.members = std::move(first);
    self->set_exit_handler([self](caf::exit_msg& msg) { // stop(): the members go with it
      self->state.stopping = true;
      for (auto& a : self->state.members)
        if (a)
          self->send_exit(a, msg.reason);
      self->quit(msg.reason);
    });
    self->set_down_handler([self](caf::down_msg& dm) {
      auto& st = self->state;
      auto i = std::find_if(st.members.begin(), st.members.end(),
                            [&](const caf::actor& a) { return a && a.address() == dm.source; })
               - st.members.begin();
      if (static_cast<size_t>(i) >= st.members.size() || st.stopping || !dm.reason
          || dm.reason == caf::exit_reason::user_shutdown)
        return;
      st.members[i] = nullptr;
      auto now = self->clock().now();
      st.crashes[i] = now - st.started[i] >= st.policy.stable_after ? 1 : st.crashes[i] + 1;
      auto delay = restart_delay(st.policy, st.crashes[i], st.rng);
      metrics::restarts(st.kind).Increment();
      log()->error("event=actor_crashed kind={} slot={} crashes={} restart_in_ms={} reason={}",
                   st.kind, i, st.crashes[i],
                   std::chrono::duration_cast<std::chrono::milliseconds>(delay).count(),
                   self->system().render(dm.reason));
      self->delayed_send(self, delay, resume_atom_v, static_cast<uint64_t>(i));
    });
    return {
      [self](resume_atom, uint64_t i) {
        auto& st = self->state;
        if (!st.stopping && i < st.members.size() && !st.members[i]) {
          start_member(self, i);
          log()->info("event=actor_restarted kind={} slot={}", st.kind, i);
        }
      },
    };
  };
  watcher_ = sys.spawn(fn, std::move(kind), std::move(spawn), policy, std::move(publish),
                       std::move(first));
}

actor_group::~actor_group() {
  stop();
}

caf::actor actor_group::operator[](size_t i) const {
  return *slots_[i].current.load(std::memory_order_acquire);
}

std::vector<caf::actor> actor_group::all() const {
  std::vector<caf::actor> out;
  for (size_t i = 0; i < n_; ++i)
    out.push_back((*this)[i]);
  return out;
}

void actor_group::stop() {
  if (watcher_)
    caf::anon_send_exit(watcher_, caf::exit_reason::user_shutdown); // it ends the members
  watcher_ = nullptr;
}

} // namespace emporium::protocols
