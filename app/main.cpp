// The composition root: the only place that links every folder.
#include "actors/cart.hpp"
#include "actors/order.hpp"
#include "actors/product.hpp"
#include "actors/sku.hpp"
#include "cluster/router.hpp"
#include "gateway/jwt.hpp"
#include "gateway/server.hpp"
#include "payments/adapter.hpp"
#include "payments/fake_provider.hpp"
#include "persistence/embedded_kafka.hpp"
#include "persistence/migrations.hpp"
#include "persistence/outbox_relay.hpp"
#include "persistence/pg_store.hpp"
#include "protocols/errc.hpp"
#include "protocols/logging.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <spdlog/cfg/env.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

using namespace emporium;

namespace {

constexpr const char* usage = R"(emporium: actor-based real-time commerce backend

Usage:
  emporium serve [options]     start a node
  emporium migrate [--pg URL]  apply database migrations and exit
  emporium token --sub ID --role customer|warehouse|ops [--wh W1,W2] [--ttl SECONDS]
                               print a token signed with the configured secret
  emporium fake-provider [--listen ADDR:PORT] [--name N] [--latency-ms MS]
                         [--decline-rate R] [--failure-rate R]
                               run the development payment provider (docs/orders.md)
  emporium --help

Options of serve (each also an environment variable; a flag wins):
  --http ADDR:PORT           EMPORIUM_HTTP         listen address    [127.0.0.1:8080]
  --pg URL                   EMPORIUM_PG           libpq URL of PostgreSQL
                                                   [postgresql://postgres@127.0.0.1:55432/emporium]
  --kafka SERVERS|embedded   EMPORIUM_KAFKA        Kafka bootstrap servers, or `embedded` for the
                                                   in-process development broker [embedded]
  --kafka-properties K=V;...  EMPORIUM_KAFKA_PROPERTIES  extra librdkafka settings for a real
                                                   cluster, e.g. security.protocol=SASL_SSL;sasl.mechanism=PLAIN
  --kafka-partitions N       EMPORIUM_KAFKA_PARTITIONS  partitions of topics the node creates [6]
  --kafka-timeout-ms MS      EMPORIUM_KAFKA_TIMEOUT_MS  an event not acknowledged by Kafka by then
                                                   is sent again in a later round [5000]
  --jwt-secret SECRET        EMPORIUM_JWT_SECRET   HS256 secret of bearer tokens (required outside dev)
  --node-id ID               EMPORIUM_NODE_ID      this node's id in events and logs [node-1]
  --io-threads N             EMPORIUM_IO_THREADS   HTTP I/O threads [max(2, cores/2); 1 on 1 core]
  --actor-threads N          EMPORIUM_ACTOR_THREADS  CAF scheduler threads [cores - io threads, >= 1]
  --store-connections N      EMPORIUM_STORE_CONNECTIONS  PostgreSQL connections [4]
  --passivate-after SECONDS  EMPORIUM_PASSIVATE_AFTER    idle time before an entity stops [600]
  --default-hold-ttl SECONDS EMPORIUM_DEFAULT_HOLD_TTL   reservation TTL when none given [900]
  --max-hold-ttl SECONDS     EMPORIUM_MAX_HOLD_TTL       largest ttl_s accepted [3600]
  --cart-ttl SECONDS         EMPORIUM_CART_TTL     idle time before a cart expires [604800]
  --cart-line-limit N        EMPORIUM_CART_LINE_LIMIT  largest quantity of one cart line [50]
  --payment-primary URL      EMPORIUM_PAYMENT_PRIMARY    base URL of the primary payment provider
  --payment-secondary URL    EMPORIUM_PAYMENT_SECONDARY  base URL of the fallback provider
  --payment-timeout-ms MS    EMPORIUM_PAYMENT_TIMEOUT_MS one provider call, connect to answer [2000]
  --payment-retry-ms MS      EMPORIUM_PAYMENT_RETRY_MS   first wait of a queued payment (doubles) [5000]
  --payment-max-wait SECONDS EMPORIUM_PAYMENT_MAX_WAIT   a queued payment's order is cancelled after [1800]
  --body-limit BYTES         EMPORIUM_BODY_LIMIT   request body limit [1048576]
  --request-timeout SECONDS  EMPORIUM_REQUEST_TIMEOUT    time to read one request; keep-alive idle [15]
  --statement-timeout-ms MS  EMPORIUM_STATEMENT_TIMEOUT_MS  PostgreSQL cancels longer statements [5000]
  --actor-timeout-ms MS      EMPORIUM_ACTOR_TIMEOUT_MS      a request without an answer by then gets 503 [10000]
  --ws-idle-timeout SECONDS  EMPORIUM_WS_IDLE_TIMEOUT    a silent WebSocket is pinged at half, closed at [30]
  --ws-max-subscriptions N   EMPORIUM_WS_MAX_SUBSCRIPTIONS  topics per storefront WebSocket [100]
  --log-format json|text     EMPORIUM_LOG_FORMAT   log lines as JSON (default) or text

Logging levels: SPDLOG_LEVEL, e.g. SPDLOG_LEVEL=info,gateway=debug.
SIGTERM or SIGINT: stop accepting, finish in-flight requests, flush, exit 0.
)";

struct options {
  std::map<std::string, std::string> values;

  std::string get(const std::string& flag, const char* env, const std::string& fallback) const {
    if (auto i = values.find(flag); i != values.end())
      return i->second;
    if (auto* e = std::getenv(env); e != nullptr && *e != '\0')
      return e;
    return fallback;
  }

  std::optional<int64_t> number(const std::string& flag, const char* env, int64_t fallback) const {
    auto s = get(flag, env, std::to_string(fallback));
    try {
      size_t used = 0;
      auto x = std::stoll(s, &used);
      if (used != s.size() || x < 0)
        throw std::invalid_argument{s};
      return x;
    } catch (const std::exception&) {
      std::cerr << "emporium: " << flag << " must be a non-negative integer, got '" << s << "'\n";
      return std::nullopt;
    }
  }
};

std::optional<options> parse_flags(int argc, char** argv, int first) {
  options out;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) {
      std::cerr << "emporium: unexpected argument '" << a << "' (see --help)\n";
      return std::nullopt;
    }
    out.values[a] = argv[++i];
  }
  return out;
}

/// %* in a pattern: the message, escaped for a JSON string.
class json_message_flag : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char c : msg.payload) {
      switch (c) {
        case '"': dest.append(std::string_view{"\\\""}); break;
        case '\\': dest.append(std::string_view{"\\\\"}); break;
        case '\n': dest.append(std::string_view{"\\n"}); break;
        default:
          if (static_cast<unsigned char>(c) < 0x20)
            dest.append(std::string_view{" "});
          else
            dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<json_message_flag>();
  }
};

void setup_logging(const std::string& format) {
  auto logger = std::make_shared<spdlog::logger>(
    "emporium", std::make_shared<spdlog::sinks::stdout_sink_mt>());
  spdlog::set_default_logger(logger);
  // Set on the registry, so every folder's logger (initialize_logger) gets it.
  if (format == "text") {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l [%n] %v");
  } else {
    auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    f->add_flag<json_message_flag>('*').set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","msg":"%*"})");
    spdlog::set_formatter(std::move(f));
  }
  spdlog::flush_on(spdlog::level::warn);
  spdlog::cfg::load_env_levels();
}

int token_command(const options& o) {
  gateway::principal p;
  p.sub = o.get("--sub", "EMPORIUM_TOKEN_SUB", "");
  p.role = o.get("--role", "EMPORIUM_TOKEN_ROLE", "");
  auto wh = o.get("--wh", "EMPORIUM_TOKEN_WH", "");
  auto ttl = o.number("--ttl", "EMPORIUM_TOKEN_TTL", 3600);
  auto secret = o.get("--jwt-secret", "EMPORIUM_JWT_SECRET", "");
  if (p.sub.empty() || (p.role != "customer" && p.role != "warehouse" && p.role != "ops")) {
    std::cerr << "emporium token: --sub ID and --role customer|warehouse|ops are required\n";
    return 2;
  }
  if (!ttl)
    return 2;
  if (secret.empty()) {
    std::cerr << "emporium token: set EMPORIUM_JWT_SECRET (or --jwt-secret)\n";
    return 2;
  }
  std::stringstream ss{wh};
  for (std::string w; std::getline(ss, w, ',');)
    if (!w.empty())
      p.warehouses.push_back(w);
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  std::cout << gateway::sign_jwt(p, secret, now, *ttl) << "\n";
  return 0;
}

const char* default_pg = "postgresql://postgres@127.0.0.1:55432/emporium";

int fake_provider_command(const options& o) {
  payments::fake_provider_config cfg;
  auto listen = o.get("--listen", "EMPORIUM_FAKE_PROVIDER", "127.0.0.1:9101");
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "emporium fake-provider: --listen must be ADDR:PORT\n";
    return 2;
  }
  cfg.address = listen.substr(0, colon);
  cfg.port = static_cast<uint16_t>(std::stoi(listen.substr(colon + 1)));
  cfg.name = o.get("--name", "EMPORIUM_FAKE_PROVIDER_NAME", "fake");
  auto latency = o.number("--latency-ms", "EMPORIUM_FAKE_LATENCY_MS", 0);
  if (!latency)
    return 2;
  cfg.latency_ms = *latency;
  try {
    cfg.decline_rate = std::stod(o.get("--decline-rate", "EMPORIUM_FAKE_DECLINE_RATE", "0"));
    cfg.failure_rate = std::stod(o.get("--failure-rate", "EMPORIUM_FAKE_FAILURE_RATE", "0"));
  } catch (const std::exception&) {
    std::cerr << "emporium fake-provider: rates are numbers between 0 and 1\n";
    return 2;
  }
  return payments::run_fake_provider(cfg);
}

int migrate_command(const options& o) {
  setup_logging(o.get("--log-format", "EMPORIUM_LOG_FORMAT", "text"));
  auto applied = persistence::migrate(o.get("--pg", "EMPORIUM_PG", default_pg));
  if (!applied)
    return 1;
  std::cout << "migrations applied: " << *applied << "\n";
  return 0;
}

/// Starts every order whose saga or compensation was cut short (a crash, a
/// stop): each resumes from its last event.
void resume_sagas(caf::actor_system& sys, const protocols::store_actor& store,
                  cluster::entity_router& router) {
  auto log = protocols::named_logger("app");
  caf::scoped_actor self{sys};
  self->request(store, std::chrono::seconds{30}, protocols::find_unsettled{"order"})
    .receive(
      [&](protocols::entity_ids& found) {
        for (auto& id : found.ids) {
          auto key = "order:" + id;
          self->send(router.shard_for(key), protocols::route_atom_v, key,
                     caf::make_message(protocols::resume_atom_v));
        }
        log->info("event=sagas_resumed count={}", found.ids.size());
      },
      [&](caf::error& err) {
        log->error("event=sagas_not_resumed error={}", to_string(to_errc(err)));
      });
}

int serve_command(const options& o) {
  setup_logging(o.get("--log-format", "EMPORIUM_LOG_FORMAT", "json"));
  auto log = protocols::named_logger("app");
  auto http = o.get("--http", "EMPORIUM_HTTP", "127.0.0.1:8080");
  auto pg = o.get("--pg", "EMPORIUM_PG", default_pg);
  auto kafka = o.get("--kafka", "EMPORIUM_KAFKA", "embedded");
  auto secret = o.get("--jwt-secret", "EMPORIUM_JWT_SECRET", "");
  auto node = o.get("--node-id", "EMPORIUM_NODE_ID", "node-1");
  // Pair reads are answered on the I/O threads (stock view), so they get
  // half the cores, at least two where there are two (docs/benchmarks.md).
  auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  auto io_threads = o.number("--io-threads", "EMPORIUM_IO_THREADS",
                             cores < 2 ? 1 : std::max<int64_t>(2, cores / 2));
  auto connections = o.number("--store-connections", "EMPORIUM_STORE_CONNECTIONS", 4);
  auto passivate = o.number("--passivate-after", "EMPORIUM_PASSIVATE_AFTER", 600);
  auto default_ttl = o.number("--default-hold-ttl", "EMPORIUM_DEFAULT_HOLD_TTL", 900);
  auto max_ttl = o.number("--max-hold-ttl", "EMPORIUM_MAX_HOLD_TTL", 3600);
  auto body_limit = o.number("--body-limit", "EMPORIUM_BODY_LIMIT", 1 << 20);
  auto request_timeout = o.number("--request-timeout", "EMPORIUM_REQUEST_TIMEOUT", 15);
  auto statement_timeout
    = o.number("--statement-timeout-ms", "EMPORIUM_STATEMENT_TIMEOUT_MS", 5000);
  auto cart_ttl = o.number("--cart-ttl", "EMPORIUM_CART_TTL", 7 * 24 * 3600);
  auto line_limit = o.number("--cart-line-limit", "EMPORIUM_CART_LINE_LIMIT", 50);
  auto actor_timeout = o.number("--actor-timeout-ms", "EMPORIUM_ACTOR_TIMEOUT_MS", 10000);
  auto ws_idle = o.number("--ws-idle-timeout", "EMPORIUM_WS_IDLE_TIMEOUT", 30);
  auto ws_subscriptions = o.number("--ws-max-subscriptions", "EMPORIUM_WS_MAX_SUBSCRIPTIONS", 100);
  if (!ws_idle || !ws_subscriptions)
    return 2;
  auto payment_primary = o.get("--payment-primary", "EMPORIUM_PAYMENT_PRIMARY", "");
  auto payment_secondary = o.get("--payment-secondary", "EMPORIUM_PAYMENT_SECONDARY", "");
  auto payment_timeout = o.number("--payment-timeout-ms", "EMPORIUM_PAYMENT_TIMEOUT_MS", 2000);
  auto payment_retry = o.number("--payment-retry-ms", "EMPORIUM_PAYMENT_RETRY_MS", 5000);
  auto payment_max_wait = o.number("--payment-max-wait", "EMPORIUM_PAYMENT_MAX_WAIT", 1800);
  if (!payment_timeout || !payment_retry || !payment_max_wait)
    return 2;
  if (!io_threads || !connections || !passivate || !default_ttl || !max_ttl || !body_limit
      || !request_timeout || !statement_timeout || !actor_timeout || !cart_ttl || !line_limit)
    return 2;
  auto colon = http.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "emporium: --http must be ADDR:PORT\n";
    return 2;
  }
  if (secret.empty()) {
    std::cerr << "emporium: EMPORIUM_JWT_SECRET (or --jwt-secret) is required\n";
    return 2;
  }

  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  caf::expected<int> migrated = caf::make_error(errc::unavailable);
  for (int attempt = 0; attempt < 20 && !migrated; ++attempt) {
    migrated = persistence::migrate(pg);
    if (!migrated && to_errc(migrated.error()) == errc::unavailable)
      std::this_thread::sleep_for(std::chrono::milliseconds{500});
    else
      break;
  }
  if (!migrated) {
    log->error("event=startup_failed reason=migrations pg={}", pg);
    return 1;
  }

  auto kafka_partitions = o.number("--kafka-partitions", "EMPORIUM_KAFKA_PARTITIONS", 6);
  auto kafka_timeout = o.number("--kafka-timeout-ms", "EMPORIUM_KAFKA_TIMEOUT_MS", 5000);
  if (!kafka_partitions || !kafka_timeout)
    return 2;
  persistence::outbox_config outbox_cfg;
  outbox_cfg.dsn = pg;
  outbox_cfg.node = node;
  outbox_cfg.partitions = static_cast<int>(std::max<int64_t>(1, *kafka_partitions));
  outbox_cfg.delivery_timeout = std::chrono::milliseconds{std::max<int64_t>(100, *kafka_timeout)};
  {
    std::stringstream props{o.get("--kafka-properties", "EMPORIUM_KAFKA_PROPERTIES", "")};
    for (std::string kv; std::getline(props, kv, ';');) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "emporium: --kafka-properties takes key=value;key=value, got '" << kv << "'\n";
        return 2;
      }
      outbox_cfg.kafka_properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
  }
  std::unique_ptr<persistence::embedded_kafka> broker;
  if (kafka == "embedded") {
    auto started = persistence::embedded_kafka::start(1, outbox_cfg.partitions);
    if (!started)
      return 1;
    broker = std::move(*started);
    kafka = broker->bootstrap_servers();
    outbox_cfg.create_topics = false; // created by the mock cluster
    std::cout << "embedded Kafka (in-memory development broker, not durable): " << kafka
              << "\n  read it with: kcat -b " << kafka << " -C -t inventory" << std::endl;
  }
  outbox_cfg.bootstrap = kafka;

  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::emporium>();
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // Leave the I/O threads their cores: on 2 cores one CAF thread halved the
  // median read latency in bench runs (docs/benchmarks.md).
  auto actor_threads = o.number("--actor-threads", "EMPORIUM_ACTOR_THREADS",
                                std::max<int64_t>(1, cores - *io_threads));
  if (!actor_threads)
    return 2;
  cfg.set("scheduler.max-threads", static_cast<size_t>(std::max<int64_t>(1, *actor_threads)));
  caf::actor_system sys{cfg};

  auto store = persistence::spawn_pg_store(
    sys, {pg, static_cast<size_t>(*connections), std::chrono::milliseconds{*statement_timeout}});
  actors::stock_config stock_cfg;
  stock_cfg.node = node;
  stock_cfg.view = std::make_shared<protocols::stock_view>();
  stock_cfg.feed = std::make_shared<protocols::live_feed>();
  cluster::router_config rcfg;
  rcfg.passivate_after = std::chrono::seconds{*passivate};
  // Entities reach each other through the router they are spawned by.
  cluster::entity_router* router_ptr = nullptr;
  actors::cart_config cart_cfg;
  cart_cfg.node = node;
  cart_cfg.ttl = std::chrono::seconds{*cart_ttl};
  cart_cfg.line_limit = *line_limit;
  cart_cfg.resolve = [&router_ptr](std::string_view key) { return router_ptr->shard_for(key); };
  payments::adapter_config pay_cfg;
  if (!payment_primary.empty())
    pay_cfg.providers.push_back({"primary", payment_primary});
  if (!payment_secondary.empty())
    pay_cfg.providers.push_back({"secondary", payment_secondary});
  if (pay_cfg.providers.empty())
    log->warn("event=no_payment_provider detail=\"checkouts wait in pending until "
              "EMPORIUM_PAYMENT_PRIMARY is set\"");
  pay_cfg.net = payments::make_http_transport(std::chrono::milliseconds{*payment_timeout});
  auto payment_adapter = payments::spawn_payment_adapter(sys, pay_cfg);
  actors::order_config order_cfg;
  order_cfg.node = node;
  order_cfg.resolve = cart_cfg.resolve;
  order_cfg.payments = payment_adapter;
  order_cfg.hold_ttl = std::chrono::seconds{*default_ttl};
  order_cfg.payment_max_wait = std::chrono::seconds{*payment_max_wait};
  order_cfg.payment_retry = std::chrono::milliseconds{std::max<int64_t>(1, *payment_retry)};
  order_cfg.payment_retry_max = std::max(order_cfg.payment_retry, std::chrono::milliseconds{60000});
  order_cfg.feed = stock_cfg.feed;
  cluster::entity_router router{
    sys, rcfg,
    {{"sku", [store, stock_cfg](caf::actor_system& s, const std::string& id, const caf::actor&) {
        return actors::spawn_sku(s, id, store, stock_cfg);
      }},
     {"product", [store, node](caf::actor_system& s, const std::string& id, const caf::actor& home) {
        return actors::spawn_product(s, id, store, node, home);
      }},
     {"cart", [store, cart_cfg](caf::actor_system& s, const std::string& id, const caf::actor& home) {
        return actors::spawn_cart(s, id, store, cart_cfg, home);
      }},
     {"order", [store, order_cfg](caf::actor_system& s, const std::string& id, const caf::actor& home) {
        return actors::spawn_order(s, id, store, order_cfg, home);
      }}}};
  router_ptr = &router;
  resume_sagas(sys, store, router);
  auto relay = persistence::spawn_outbox_relay(sys, outbox_cfg);

  gateway::gateway_config gcfg;
  gcfg.address = http.substr(0, colon);
  gcfg.port = static_cast<uint16_t>(std::stoi(http.substr(colon + 1)));
  gcfg.io_threads = std::max<size_t>(1, static_cast<size_t>(*io_threads));
  gcfg.jwt_secret = secret;
  gcfg.default_hold_ttl_s = *default_ttl;
  gcfg.max_hold_ttl_s = *max_ttl;
  gcfg.body_limit = static_cast<size_t>(*body_limit);
  gcfg.request_timeout = std::chrono::seconds{std::max<int64_t>(1, *request_timeout)};
  gcfg.actor_timeout = std::chrono::milliseconds{std::max<int64_t>(1, *actor_timeout)};
  gcfg.ws_idle_timeout = std::chrono::seconds{std::max<int64_t>(1, *ws_idle)};
  gcfg.ws_max_subscriptions = static_cast<size_t>(std::max<int64_t>(1, *ws_subscriptions));
  gateway::server server{gcfg, gateway::gateway_deps{
                                 sys, [&router](std::string_view key) { return router.shard_for(key); },
                                 store, stock_cfg.view, stock_cfg.feed}};
  auto port = server.start();
  if (!port) {
    caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
    router.stop();
    caf::anon_send_exit(payment_adapter, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    return 1;
  }
  log->info("event=node_started node={} url=http://{}:{} kafka={} pg_migrations_applied={}",
            node, gcfg.address, *port, kafka, *migrated);
  std::cout << "emporium node " << node << " serving http://" << gcfg.address << ":" << *port
            << "  (kafka: " << kafka << ")" << std::endl;

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->info("event=node_stopping signal={}", sig);
  server.stop(std::chrono::seconds{10}); // finish in-flight requests
  router.stop();                         // entities answer nothing new
  caf::anon_send_exit(relay, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(payment_adapter, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
  log->info("event=node_stopped node={}", node);
  spdlog::default_logger()->flush();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string{argv[1]} == "--help" || std::string{argv[1]} == "-h"
      || std::string{argv[1]} == "help") {
    std::cout << usage;
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  auto flags = parse_flags(argc, argv, 2);
  if (!flags)
    return 2;
  if (cmd == "serve")
    return serve_command(*flags);
  if (cmd == "token")
    return token_command(*flags);
  if (cmd == "migrate")
    return migrate_command(*flags);
  if (cmd == "fake-provider")
    return fake_provider_command(*flags);
  std::cerr << "emporium: unknown command '" << cmd << "' (see --help)\n";
  return 2;
}
