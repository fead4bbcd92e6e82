#include "app/node.hpp"

#include "actors/cart.hpp"
#include "actors/order.hpp"
#include "actors/resume.hpp"
#include "actors/product.hpp"
#include "actors/reservation.hpp"
#include "actors/sku.hpp"
#include "cluster/coordinator.hpp"
#include "cluster/router.hpp"
#include "cluster/shard_table.hpp"
#include "cluster/transport.hpp"
#include "gateway/server.hpp"
#include "payments/adapter.hpp"
#include "protocols/supervisor.hpp"
#include "persistence/embedded_kafka.hpp"
#include "persistence/migrations.hpp"
#include "persistence/outbox_relay.hpp"
#include "persistence/pg_store.hpp"
#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/metrics.hpp"
#include "protocols/logging.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/send.hpp>

#include <malloc.h>

#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>
#include <stop_token>
#include <thread>

namespace emporium::app {

namespace {

spdlog::logger* log() {
  static auto instance = protocols::named_logger("app");
  return instance.get();
}

/// Migrations, retried for up to 10 s while PostgreSQL is still starting.
caf::expected<int> migrate_when_up(const std::string& pg) {
  caf::expected<int> migrated = caf::make_error(errc::unavailable);
  for (int attempt = 0; attempt < 20; ++attempt) {
    migrated = persistence::migrate(pg);
    if (migrated || to_errc(migrated.error()) != errc::unavailable)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{500});
  }
  return migrated;
}

/// Gives memory back to the system after passivation. glibc keeps what
/// stopped actors freed resident: measured at 200 000 idle pairs, 1 168 B of
/// RSS per pair before malloc_trim(0) and 663 B after. Every 10 s this thread
/// (never a scheduler or I/O thread) adds up how many live entities fewer
/// there are than at its last look; once that reaches `trim_after_stopped` it
/// trims. (Churn, as many started as stopped, reuses the memory instead.)
std::jthread start_memory_trimmer() {
  constexpr double trim_after_stopped = 10000;
  return std::jthread([](std::stop_token stop) {
    std::mutex m;
    std::condition_variable_any wake;
    double last = 0, fewer = 0;
    while (true) {
      {
        std::unique_lock lock{m};
        wake.wait_for(lock, stop, std::chrono::seconds{10}, [] { return false; });
      }
      if (stop.stop_requested())
        return;
      double live = 0;
      for (auto kind : {"stock", "sku", "cart", "order", "product", "reservation"})
        live += protocols::metrics::actors(kind).Value();
      fewer += std::max(0.0, last - live);
      last = live;
      if (fewer < trim_after_stopped)
        continue;
      auto t0 = std::chrono::steady_clock::now();
      malloc_trim(0);
      log()->info("event=memory_trimmed stopped={} live={} ms={}", fewer, live,
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - t0).count());
      fewer = 0;
    }
  });
}

} // namespace

struct node::parts {
  parts(size_t actor_threads, std::unique_ptr<persistence::embedded_kafka> b,
        const cluster::transport_config& t)
    : broker(std::move(b)), cfg(make_config(actor_threads, t)), sys(cfg) {
  }
  static caf::actor_system_config make_config(size_t actor_threads,
                                              const cluster::transport_config& t) {
    caf::actor_system_config c;
    c.add_message_types<caf::id_block::emporium>();
    c.set("logger.verbosity", caf::atom("quiet"));
    c.set("scheduler.max-threads", actor_threads);
    cluster::configure_transport(c, t); // files checked before: cannot fail here
    return c;
  }
  std::unique_ptr<persistence::embedded_kafka> broker; ///< outlives the actors that use it
  caf::actor_system_config cfg;                         ///< outlives the system, which refers to it
  caf::actor_system sys;
  protocols::store_actor store;
  caf::actor payments;
  caf::actor relay;
  std::shared_ptr<cluster::shard_table> shards;
  protocols::membership_actor membership;
  caf::actor coordinator;
  std::atomic<bool> left{false};
  std::unique_ptr<cluster::entity_router> router;
  std::unique_ptr<gateway::server> gateway;
  uint16_t port = 0;
  bool stopped = false;
  std::jthread trimmer = start_memory_trimmer();
};

node::node(std::unique_ptr<parts> p) : parts_(std::move(p)) {
}

node::~node() {
  stop();
}

uint16_t node::port() const noexcept {
  return parts_->port;
}

caf::expected<std::unique_ptr<node>> node::start(const node_config& c) {
  auto migrated = migrate_when_up(c.pg);
  if (!migrated) {
    log()->error("event=startup_failed reason=migrations pg={}", redact_dsn(c.pg));
    return migrated.error();
  }

  persistence::outbox_config outbox;
  outbox.dsn = c.pg;
  outbox.node = c.node_id;
  outbox.partitions = c.kafka_partitions;
  outbox.delivery_timeout = c.kafka_timeout;
  outbox.kafka_properties = c.kafka_properties;
  outbox.bootstrap = c.kafka;
  std::unique_ptr<persistence::embedded_kafka> broker;
  if (c.kafka == "embedded") {
    auto started = persistence::embedded_kafka::start(1, outbox.partitions);
    if (!started)
      return started.error();
    broker = std::move(*started);
    outbox.bootstrap = broker->bootstrap_servers();
    outbox.create_topics = false; // created by the mock cluster
    std::cout << "embedded Kafka (in-memory development broker, not durable): "
              << outbox.bootstrap << "\n  read it with: kcat -b " << outbox.bootstrap
              << " -C -t inventory" << std::endl;
  }

  // Pair reads are answered on the I/O threads (stock view), so they get
  // half the cores, at least two where there are two; CAF the rest: on 2
  // cores one CAF thread halved the median read latency (docs/benchmarks.md).
  auto cores = std::max<size_t>(1, std::thread::hardware_concurrency());
  auto io_threads = c.io_threads > 0 ? c.io_threads : cores < 2 ? 1 : std::max<size_t>(2, cores / 2);
  auto actor_threads = c.actor_threads > 0 ? c.actor_threads
                                           : std::max<size_t>(1, cores > io_threads ? cores - io_threads : 1);
  cluster::transport_config transport{c.cluster_cert, c.cluster_key, c.cluster_ca};
  {
    caf::actor_system_config probe; // the TLS files, before CAF would abort on them
    if (auto err = cluster::configure_transport(probe, transport)) {
      log()->error("event=startup_failed reason=cluster_tls detail=\"{}\"", to_string(to_errc(err)));
      return err;
    }
  }
  auto p = std::make_unique<parts>(actor_threads, std::move(broker), transport);
  auto& sys = p->sys;

  auto unreachable = std::make_shared<std::atomic<bool>>(false);
  p->store = persistence::spawn_pg_store(
    sys, {c.pg, c.store_connections, c.statement_timeout, /*require_fence=*/true, unreachable});
  // Supervised: the coordinator's rounds go through it; a round it dropped
  // is answered unavailable and the next round (lease/3 later) goes on.
  p->membership = caf::actor_cast<protocols::membership_actor>(protocols::spawn_supervised(
    sys, "membership", [cfg = persistence::pg_store_config{c.pg, 1, c.statement_timeout}](caf::actor_system& s) {
      return caf::actor_cast<caf::actor>(persistence::spawn_membership(s, cfg));
    }));
  cluster::router_config rcfg;
  rcfg.unreachable = unreachable;
  rcfg.passivate_after = c.passivate_after;
  p->shards = std::make_shared<cluster::shard_table>(rcfg.shards);
  auto store = p->store;
  actors::stock_config stock_cfg;
  stock_cfg.node = c.node_id;
  stock_cfg.view = std::make_shared<cluster::stock_view>(p->shards, unreachable);
  stock_cfg.feed = std::make_shared<cluster::live_feed>();
  // Entities reach each other through the router they are spawned by.
  auto* router_slot = &p->router;
  protocols::entity_resolver resolve = [router_slot](const protocols::entity_key& key) {
    return (*router_slot)->shard_for(key);
  };
  actors::cart_config cart_cfg;
  cart_cfg.node = c.node_id;
  cart_cfg.ttl = c.cart_ttl;
  cart_cfg.line_limit = c.cart_line_limit;
  cart_cfg.resolve = resolve;
  payments::adapter_config pay_cfg;
  if (!c.payment_primary.empty())
    pay_cfg.providers.push_back({"primary", c.payment_primary});
  if (!c.payment_secondary.empty())
    pay_cfg.providers.push_back({"secondary", c.payment_secondary});
  if (pay_cfg.providers.empty())
    log()->warn("event=no_payment_provider detail=\"checkouts wait in pending until "
                "EMPORIUM_PAYMENT_PRIMARY is set\"");
  pay_cfg.net = payments::make_http_transport(c.payment_timeout);
  // Supervised (protocols/supervisor): a crash answers what was in flight
  // unavailable (the saga retries) and restarts it after a backoff.
  p->payments = protocols::spawn_supervised(sys, "payment_adapter", [pay_cfg](caf::actor_system& s) {
    return payments::spawn_payment_adapter(s, pay_cfg);
  });
  actors::order_config order_cfg;
  order_cfg.node = c.node_id;
  order_cfg.resolve = resolve;
  order_cfg.payments = p->payments;
  order_cfg.hold_ttl = std::chrono::seconds{c.default_hold_ttl_s};
  order_cfg.payment_max_wait = c.payment_max_wait;
  order_cfg.payment_retry = c.payment_retry;
  order_cfg.payment_retry_max = std::max(order_cfg.payment_retry, std::chrono::milliseconds{60000});
  order_cfg.feed = stock_cfg.feed;
  auto node_id = c.node_id;
  p->router = std::make_unique<cluster::entity_router>(
    sys, rcfg,
    std::map<protocols::entity_kind, cluster::entity_factory>{
      {protocols::entity_kind::sku,
       [store, stock_cfg](caf::actor_system& s, const std::string& id, const caf::actor&,
                          const protocols::fence& under) {
         auto cfg = stock_cfg;
         cfg.under = under;
         return actors::spawn_sku(s, id, store, std::move(cfg));
       }},
      {protocols::entity_kind::product,
       [store, node_id](caf::actor_system& s, const std::string& id, const caf::actor& home,
                        const protocols::fence& under) {
         return actors::spawn_product(s, id, store, node_id, home, under);
       }},
      {protocols::entity_kind::cart,
       [store, cart_cfg](caf::actor_system& s, const std::string& id, const caf::actor& home,
                         const protocols::fence& under) {
         auto cfg = cart_cfg;
         cfg.under = under;
         return actors::spawn_cart(s, id, store, std::move(cfg), home);
       }},
      {protocols::entity_kind::order,
       [store, order_cfg](caf::actor_system& s, const std::string& id, const caf::actor& home,
                          const protocols::fence& under) {
         auto cfg = order_cfg;
         cfg.under = under;
         return actors::spawn_order(s, id, store, std::move(cfg), home);
       }},
      {protocols::entity_kind::reservation,
       [store, resolve](caf::actor_system& s, const std::string& id, const caf::actor& home,
                        const protocols::fence&) {
         return actors::spawn_reservation(s, id, store, resolve, home);
       }}},
    p->shards, stock_cfg.feed);
  p->relay = protocols::spawn_supervised(sys, "outbox_relay", [outbox](caf::actor_system& s) {
    return persistence::spawn_outbox_relay(s, outbox); // resumes from its high-water mark
  });

  gateway::gateway_config g;
  g.address = c.http.host;
  g.port = c.http.port;
  g.io_threads = io_threads;
  g.jwt_secret = c.jwt_secret;
  g.default_hold_ttl_s = c.default_hold_ttl_s;
  g.max_hold_ttl_s = c.max_hold_ttl_s;
  g.body_limit = c.body_limit;
  g.request_timeout = c.request_timeout;
  g.actor_timeout = c.actor_timeout;
  g.ws_idle_timeout = c.ws_idle_timeout;
  g.ws_max_subscriptions = c.ws_max_subscriptions;
  g.public_limit = c.rate_limit_public;
  g.customer_limit = c.rate_limit_customer;
  g.trusted_proxies = c.trusted_proxies;
  g.max_inflight = c.max_inflight;
  g.max_connections = c.max_connections;
#ifdef EMPORIUM_FAILURE_HOOK
  if (c.failure_hook) {
    log()->warn("event=failure_hook_enabled detail=\"POST /v1/debug/crash crashes actors\"");
    g.failure_hook = [raw = p.get(), resolve](const std::string& kind, const std::string& id) {
      using namespace protocols;
      auto& p = *raw; // the hook runs while the node is up
      // Singletons behind protocols::spawn_supervised.
      for (auto [name, target] : {std::pair{"payment_adapter", &p.payments},
                                  std::pair{"outbox_relay", &p.relay},
                                  std::pair{"coordinator", &p.coordinator}})
        if (kind == name && *target) {
          caf::anon_send(*target, crash_atom_v);
          return true;
        }
      if (kind == "membership") {
        caf::anon_send(caf::actor_cast<caf::actor>(p.membership), crash_atom_v);
        return true;
      }
      // Slots of a protocols::actor_group; `id` is the slot number.
      auto slot = id.empty() ? size_t{0} : static_cast<size_t>(std::strtoul(id.c_str(), nullptr, 10));
      if (kind == "entity_router") {
        caf::anon_send((*p.router->shard_actors())[slot % p.router->shard_actors()->size()],
                       crash_atom_v);
        return true;
      }
      if (kind == "gateway_bridge") {
        p.gateway->crash_bridge(slot);
        return true;
      }
      if (kind == "feed_relay" && p.router->feed_relay()) {
        caf::anon_send(p.router->feed_relay(), crash_atom_v);
        return true;
      }
      if (kind == "store_worker") {
        caf::anon_send(caf::actor_cast<caf::actor>(p.store), crash_atom_v);
        return true;
      }
      for (auto k : {entity_kind::sku, entity_kind::product, entity_kind::cart, entity_kind::order,
                     entity_kind::reservation})
        if (kind == kind_name(k) && !id.empty()) {
          entity_key key{k, id};
          caf::anon_send(resolve(key), crash_atom_v, key);
          return true;
        }
      return false;
    };
  }
#endif
  p->gateway = std::make_unique<gateway::server>(
    g, gateway::gateway_deps{sys, resolve, caf::actor_cast<protocols::health_actor>(store),
                             stock_cfg.view, stock_cfg.feed, p->shards,
                             caf::actor_cast<caf::actor>(p->membership)});
  auto port = p->gateway->start();
  std::unique_ptr<node> n{new node(std::move(p))};
  if (!port) {
    n->stop();
    return port.error();
  }
  n->parts_->port = *port;
  if (auto joined = n->join_cluster(c, transport, resolve); !joined) {
    n->stop();
    return joined.error();
  }
  log()->info("event=node_started node={} url=http://{}:{} kafka={} pg_migrations_applied={}",
              c.node_id, c.http.host, *port, outbox.bootstrap, *migrated);
  std::cout << "emporium node " << c.node_id << " serving http://" << c.http.host << ":" << *port
            << "  (kafka: " << outbox.bootstrap << ")" << std::endl;
  return n;
}

caf::expected<void> node::join_cluster(const node_config& c,
                                       const cluster::transport_config& transport,
                                       const protocols::entity_resolver& resolve) {
  auto& p = *parts_;
  auto& sys = p.sys;
  auto bound = cluster::publish_endpoint(sys, p.router->endpoint(), c.cluster.host, c.cluster.port,
                                         transport);
  if (!bound) {
    log()->error("event=startup_failed reason=cluster_port address={}:{} error={}", c.cluster.host,
                 c.cluster.port, sys.render(bound.error()));
    return bound.error();
  }
  auto connect = cluster::make_connector(sys, transport);
  // Seeds are only probed (a TCP connect, no BASP session: a second
  // connection to a peer would make CAF drop one); members come from PostgreSQL.
  for (auto& seed : c.seeds) {
    auto reached = cluster::port_open(seed.host, seed.port, std::chrono::seconds{1});
    (reached ? log()->info("event=seed_checked seed={}:{} reachable=true", seed.host, seed.port)
             : log()->warn("event=seed_checked seed={}:{} reachable=false", seed.host, seed.port));
  }
  cluster::coordinator_config cc;
  cc.self.id = c.node_id;
  cc.self.incarnation = protocols::new_uuid();
  cc.self.http_address = c.http.host + ":" + std::to_string(p.port);
  cc.self.cluster_address = c.cluster.host + ":" + std::to_string(*bound);
  cc.lease = c.shard_lease;
  cc.shards = p.router->config().shards;
  if (p.router->feed_relay())
    cc.also_notify.push_back(p.router->feed_relay());
  cc.endpoint = p.router->endpoint();
  auto store = p.store;
  auto shards = p.shards;
  cc.on_acquired = [&sys, store, resolve, shards](const std::vector<uint32_t>& acquired) {
    // Open sagas and live holds of the shards just taken (from a node that
    // died or handed them over) go on here.
    auto taken = std::make_shared<std::set<uint32_t>>(acquired.begin(), acquired.end());
    actors::resume_unsettled(sys, store, resolve, [shards, taken](const protocols::entity_key& k) {
      return taken->count(shards->shard_of(k)) > 0;
    });
  };
  auto* left = &p.left;
  cc.on_left = [left] { left->store(true); };
  cc.actor_count = [] {
    double n = 0;
    for (auto* kind : {"sku", "stock", "product", "cart", "order", "reservation"})
      n += protocols::metrics::actors(kind).Value();
    return static_cast<int64_t>(n);
  };
  // Supervised: a restarted coordinator starts from PostgreSQL's view (its
  // own leases, under the same incarnation, are taken up again at its first
  // round) and dials its peers anew.
  auto group = p.router->shard_actors();
  cluster::shard_actors_fn router = [group] { return group->all(); };
  auto membership = p.membership;
  p.coordinator = protocols::spawn_supervised(
    sys, "coordinator", [cc, membership, shards, router, connect](caf::actor_system& s) {
      return cluster::spawn_coordinator(s, cc, membership, shards, router, connect);
    });
  caf::anon_send(p.router->endpoint(), protocols::owners_atom_v, p.coordinator);
  std::cout << "cluster: " << c.cluster.host << ":" << *bound
            << (transport.tls() ? " (mutual TLS)" : " (plain, loopback)") << std::endl;
  return {};
}

void node::drain() {
  if (parts_->coordinator)
    caf::anon_send(parts_->coordinator, protocols::drain_atom_v);
  else
    parts_->left = true;
}

bool node::has_left() const noexcept {
  return parts_->left.load();
}

void node::stop() {
  auto& p = *parts_;
  if (p.stopped)
    return;
  p.stopped = true;
  if (p.gateway)
    p.gateway->stop(std::chrono::seconds{10}); // finish in-flight requests
  if (p.coordinator)
    caf::anon_send_exit(p.coordinator, caf::exit_reason::user_shutdown);
  if (p.router)
    p.router->stop(); // entities answer nothing new
  caf::anon_send_exit(p.relay, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(p.payments, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(p.store, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(p.membership, caf::exit_reason::user_shutdown);
}

} // namespace emporium::app
