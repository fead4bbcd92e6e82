#include "payments/adapter.hpp"

#include "protocols/errc.hpp"
#include "protocols/logging.hpp"
#include "protocols/metrics.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <boost/json.hpp>

#include <map>
#include <random>

namespace emporium::payments {

/// A transport answer on its way back into the adapter (in-process only).
struct provider_reply {
  uint64_t call_id = 0;
  http_reply reply;
};

/// Time to try a call again (after its backoff).
struct retry_call {
  uint64_t id = 0;
};

} // namespace emporium::payments

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::payments::provider_reply)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::payments::retry_call)

namespace emporium::payments {

namespace {

using namespace protocols;
namespace json = boost::json;

spdlog::logger* log() {
  static auto instance = named_logger("payments");
  return instance.get();
}

/// Metric series of one provider, built once.
struct provider_metrics {
  prometheus::Gauge* breaker_state; ///< 0 closed, 1 open, 2 half-open
  prometheus::Counter* breaker_opened;
  std::map<std::pair<std::string, std::string>, prometheus::Counter*> calls; ///< (op, outcome)
  std::map<std::string, prometheus::Histogram*> latency;                     ///< by op

  explicit provider_metrics(const std::string& provider) {
    auto& reg = metrics::registry();
    static auto& state = prometheus::BuildGauge()
                           .Name("emporium_payment_breaker_state")
                           .Help("Breaker per provider: 0 closed, 1 open, 2 half-open")
                           .Register(reg);
    static auto& opened = prometheus::BuildCounter()
                            .Name("emporium_payment_breaker_opened_total")
                            .Help("Times a provider's breaker opened")
                            .Register(reg);
    static auto& count = prometheus::BuildCounter()
                           .Name("emporium_payment_calls_total")
                           .Help("Provider calls by op and outcome (ok, declined, transient, "
                                 "rejected)")
                           .Register(reg);
    static auto& seconds = prometheus::BuildHistogram()
                             .Name("emporium_payment_call_seconds")
                             .Help("Provider call latency by op")
                             .Register(reg);
    breaker_state = &state.Add({{"provider", provider}});
    breaker_opened = &opened.Add({{"provider", provider}});
    for (const char* op : {"authorize", "capture", "void", "refund"}) {
      for (const char* outcome : {"ok", "declined", "transient", "rejected"})
        calls[{op, outcome}] = &count.Add({{"provider", provider}, {"op", op}, {"outcome", outcome}});
      latency[op] = &seconds.Add({{"provider", provider}, {"op", op}}, metrics::latency_buckets());
    }
  }
};

struct provider {
  provider_config cfg;
  protocols::breaker gate;
  std::shared_ptr<provider_metrics> m;
};

struct pending_call {
  payment_call call;
  caf::typed_response_promise<payment_outcome> rp;
  size_t provider = std::string::npos; ///< being tried
  int attempt = 0;                     ///< attempts on `provider`
  uint64_t done_with = 0;              ///< bit i: provider i was tried to the end
  std::string last_error;
  caf::actor_clock::time_point sent;
};

struct adapter_state {
  static inline const char* name = "payment_adapter";
  adapter_config cfg;
  std::vector<provider> providers;
  std::map<uint64_t, pending_call> calls;
  uint64_t next_id = 1;
  std::mt19937_64 rng;
};

using self_ptr = caf::stateful_actor<adapter_state>*;

void observe_breaker(provider& p, caf::actor_clock::time_point now) {
  using state = protocols::breaker::state;
  auto s = p.gate.current(now);
  p.m->breaker_state->Set(s == state::closed ? 0 : s == state::open ? 1 : 2);
}

/// The provider for `pc`'s next attempt: the one being tried while it has
/// attempts left and its breaker lets the call through; else the first, in
/// order of preference, not tried to the end whose breaker does (attempts
/// start again there). npos: none is left.
size_t choose(self_ptr self, pending_call& pc, caf::actor_clock::time_point now) {
  auto& ps = self->state.providers;
  if (pc.provider != std::string::npos) {
    auto& cur = ps[pc.provider];
    auto allowed = pc.attempt < self->state.cfg.max_attempts && cur.gate.allow(now);
    observe_breaker(cur, now);
    if (allowed)
      return pc.provider;
    pc.done_with |= uint64_t{1} << pc.provider;
  }
  for (size_t i = 0; i < ps.size() && i < 64; ++i) {
    if ((pc.done_with >> i & 1) != 0 || (!pc.call.provider.empty() && ps[i].cfg.name != pc.call.provider))
      continue;
    auto allowed = ps[i].gate.allow(now);
    observe_breaker(ps[i], now);
    if (!allowed)
      continue;
    if (pc.provider != std::string::npos)
      log()->warn("event=payment_failover op={} order_id={} from={} to={} last_error=\"{}\"",
                  pc.call.op, pc.call.order_id, ps[pc.provider].cfg.name, ps[i].cfg.name,
                  pc.last_error);
    pc.provider = i;
    pc.attempt = 0;
    return i;
  }
  return std::string::npos;
}

std::string body_of(const payment_call& c) {
  json::object o;
  if (c.op == "authorize") {
    o = {{"amount_minor", c.amount_minor},
         {"currency", c.currency},
         {"token", c.token},
         {"order_id", c.order_id}};
  } else {
    o["authorization_id"] = c.authorization_id;
    if (c.op != "void")
      o["amount_minor"] = c.amount_minor;
  }
  return json::serialize(o);
}

void attempt(self_ptr self, uint64_t id);

void fail_call(self_ptr self, uint64_t id, caf::error err) {
  auto i = self->state.calls.find(id);
  i->second.rp.deliver(std::move(err));
  self->state.calls.erase(i);
}

/// Transient trouble: the same provider again after a backoff while it has
/// attempts left and its breaker is not open; else the next provider at once
/// (attempt() gives up with `unavailable` when none is left).
void retry_or_give_up(self_ptr self, uint64_t id, const std::string& why) {
  auto& st = self->state;
  auto& pc = st.calls.at(id);
  pc.last_error = why;
  auto& p = st.providers[pc.provider];
  if (pc.attempt >= st.cfg.max_attempts
      || p.gate.current(self->clock().now()) == protocols::breaker::state::open)
    return attempt(self, id);
  // Full jitter: uniform in [0, min(max, base * 2^(attempt-1))].
  auto cap = std::min<int64_t>(st.cfg.backoff_max.count(),
                               st.cfg.backoff_base.count() << std::min(pc.attempt - 1, 20));
  auto delay = std::uniform_int_distribution<int64_t>{0, std::max<int64_t>(0, cap)}(st.rng);
  self->delayed_send(self, std::chrono::milliseconds{delay}, retry_call{id});
}

void attempt(self_ptr self, uint64_t id) {
  auto& st = self->state;
  auto& pc = st.calls.at(id);
  auto now = self->clock().now();
  auto chosen = choose(self, pc, now);
  if (chosen == std::string::npos) {
    auto why = pc.last_error.empty() ? std::string{"breaker open"} : pc.last_error;
    if (!pc.last_error.empty())
      log()->warn("event=payment_unavailable op={} order_id={} last_error=\"{}\"", pc.call.op,
                  pc.call.order_id, why);
    return fail_call(self, id,
                     caf::make_error(errc::unavailable, "payment providers unavailable: " + why));
  }
  ++pc.attempt;
  pc.sent = now;
  auto& p = st.providers[chosen];
  caf::actor me = caf::actor_cast<caf::actor>(self);
  st.cfg.net->post(p.cfg.base_url, pc.call.op, pc.call.idempotency_key, body_of(pc.call),
                   [me, id](http_reply r) {
                     caf::anon_send(me, provider_reply{id, std::move(r)});
                   });
}

void on_reply(self_ptr self, provider_reply& r) {
  auto& st = self->state;
  auto i = st.calls.find(r.call_id);
  if (i == st.calls.end())
    return;
  auto& pc = i->second;
  auto& p = st.providers[pc.provider];
  auto now = self->clock().now();
  const auto& op = pc.call.op;
  auto secs = std::chrono::duration<double>(now - pc.sent).count();
  if (auto l = p.m->latency.find(op); l != p.m->latency.end())
    l->second->Observe(secs);
  auto count = [&](const char* outcome) {
    if (auto c = p.m->calls.find({op, outcome}); c != p.m->calls.end())
      c->second->Increment();
  };
  bool transient = r.reply.status == 0 || r.reply.status >= 500;
  auto opened_before = p.gate.times_opened();
  p.gate.record(!transient, now);
  if (p.gate.times_opened() != opened_before) {
    p.m->breaker_opened->Increment();
    log()->warn("event=breaker_opened provider={}", p.cfg.name);
  }
  observe_breaker(p, now);
  if (transient) {
    count("transient");
    auto why = p.cfg.name + ": "
               + (r.reply.status == 0 ? r.reply.error : "HTTP " + std::to_string(r.reply.status));
    return retry_or_give_up(self, r.call_id, why);
  }
  payment_outcome out;
  out.provider = p.cfg.name;
  if (r.reply.status == 200) {
    json::error_code ec;
    auto v = json::parse(r.reply.body, ec);
    if (!ec && v.is_object()) {
      auto& o = v.as_object();
      if (auto* s = o.if_contains("status"); s && s->is_string())
        out.status = std::string{s->as_string()};
      if (auto* a = o.if_contains("authorization_id"); a && a->is_string())
        out.authorization_id = std::string{a->as_string()};
    }
  }
  if (out.status.empty()) {
    count("rejected");
    log()->error("event=payment_rejected provider={} op={} status={} body=\"{}\"", p.cfg.name, op,
                 r.reply.status, r.reply.body.substr(0, 200));
    return fail_call(self, r.call_id,
                     caf::make_error(errc::internal, std::string{"payment provider refused the call"}));
  }
  count(out.status == "declined" ? "declined" : "ok");
  if (op != "authorize")
    out.authorization_id = pc.call.authorization_id;
  pc.rp.deliver(std::move(out));
  st.calls.erase(i);
}

caf::behavior adapter(self_ptr self, adapter_config cfg) {
  auto& st = self->state;
  st.rng.seed(cfg.seed != 0 ? cfg.seed : std::random_device{}());
  for (auto& p : cfg.providers)
    st.providers.push_back({p, breaker{cfg.breaker}, std::make_shared<provider_metrics>(p.name)});
  st.cfg = std::move(cfg);
  return {
    [self](payment_call& call) -> caf::result<payment_outcome> {
      auto& st = self->state;
      auto rp = self->make_response_promise<payment_outcome>();
      if (st.providers.empty()) {
        rp.deliver(caf::make_error(errc::unavailable, std::string{"no payment provider configured"}));
        return rp;
      }
      auto id = st.next_id++;
      st.calls.emplace(id, pending_call{std::move(call), rp});
      attempt(self, id);
      return rp;
    },
    [self](provider_reply& r) { on_reply(self, r); },
    [self](retry_call r) {
      if (self->state.calls.count(r.id) != 0)
        attempt(self, r.id);
    },
  };
}

} // namespace

caf::actor spawn_payment_adapter(caf::actor_system& sys, adapter_config cfg) {
  return sys.spawn(adapter, std::move(cfg));
}

} // namespace emporium::payments
