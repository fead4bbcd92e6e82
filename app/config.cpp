#include "app/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

namespace emporium::app {

namespace {

/// One setting of `serve`: its flag, its variable, how --help shows it, and
/// how a value is read into the configuration ("" or why not).
struct setting_row {
  const char* flag;
  const char* env;
  const char* value; ///< placeholder in --help
  const char* help;
  const char* fallback; ///< nullptr: no default (the field's own value stands)
  std::string (*apply)(node_config&, const std::string&);
};

std::optional<int64_t> integer(const std::string& s, int64_t lo, int64_t hi) {
  if (s.empty() || s.size() > 19)
    return std::nullopt;
  int64_t x = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return std::nullopt;
    x = x * 10 + (c - '0');
  }
  if (x < lo || x > hi)
    return std::nullopt;
  return x;
}

std::string range(int64_t lo, int64_t hi) {
  return "must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
}


#define NUMBER(field, lo, hi, convert)                                                          \
  [](node_config& c, const std::string& v) -> std::string {                                     \
    auto x = integer(v, lo, hi);                                                                \
    if (!x)                                                                                     \
      return range(lo, hi) + ", got '" + v + "'";                                               \
    c.field = convert(*x);                                                                      \
    return "";                                                                                  \
  }
#define SAME(x) (x)
#define SECONDS(x) std::chrono::seconds{x}
#define MILLIS(x) std::chrono::milliseconds{x}
#define SIZE(x) static_cast<size_t>(x)
#define INT(x) static_cast<int>(x)
#define TEXT(field)                                                                             \
  [](node_config& c, const std::string& v) -> std::string {                                     \
    c.field = v;                                                                                \
    return "";                                                                                  \
  }

constexpr int64_t day = 24 * 3600;

const std::vector<setting_row>& rows() {
  static const std::vector<setting_row> table{
    {"--http", "EMPORIUM_HTTP", "ADDR:PORT", "listen address", "127.0.0.1:8080",
     [](node_config& c, const std::string& v) { return parse_endpoint(v, c.http); }},
    {"--pg", "EMPORIUM_PG", "URL", "libpq URL of PostgreSQL",
     "postgresql://postgres@127.0.0.1:55432/emporium",
     [](node_config& c, const std::string& v) -> std::string {
       if (v.rfind("postgresql://", 0) != 0 && v.rfind("postgres://", 0) != 0)
         return "must be a postgresql:// URL";
       c.pg = v;
       return "";
     }},
    {"--kafka", "EMPORIUM_KAFKA", "SERVERS|embedded",
     "Kafka bootstrap servers, or `embedded` for the in-process development broker", "embedded",
     TEXT(kafka)},
    {"--kafka-properties", "EMPORIUM_KAFKA_PROPERTIES", "K=V;...",
     "extra librdkafka settings for a real cluster, e.g. security.protocol=SASL_SSL", "",
     [](node_config& c, const std::string& v) -> std::string {
       c.kafka_properties.clear();
       std::stringstream props{v};
       for (std::string kv; std::getline(props, kv, ';');) {
         auto eq = kv.find('=');
         if (eq == std::string::npos || eq == 0)
           return "takes key=value;key=value, got '" + kv + "'";
         c.kafka_properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
       }
       return "";
     }},
    {"--kafka-partitions", "EMPORIUM_KAFKA_PARTITIONS", "N", "partitions of topics the node creates",
     "6", NUMBER(kafka_partitions, 1, 10000, INT)},
    {"--kafka-timeout-ms", "EMPORIUM_KAFKA_TIMEOUT_MS", "MS",
     "an event not acknowledged by Kafka by then is sent again in a later round", "5000",
     NUMBER(kafka_timeout, 100, 3600000, MILLIS)},
    {"--jwt-secret", "EMPORIUM_JWT_SECRET", "SECRET", "HS256 secret of bearer tokens (required)",
     nullptr, TEXT(jwt_secret)},
    {"--node-id", "EMPORIUM_NODE_ID", "ID", "this node's id in events and logs", "node-1",
     [](node_config& c, const std::string& v) -> std::string {
       if (v.empty() || v.size() > 64)
         return "must be 1 to 64 characters";
       c.node_id = v;
       return "";
     }},
    {"--cluster", "EMPORIUM_CLUSTER", "ADDR:PORT",
     "where peers reach this node (loopback only without EMPORIUM_CLUSTER_CERT/KEY/CA)",
     "127.0.0.1:7070", [](node_config& c, const std::string& v) { return parse_endpoint(v, c.cluster); }},
    {"--seeds", "EMPORIUM_SEEDS", "HOST:PORT,...",
     "cluster addresses of nodes to join through (PostgreSQL's membership table is the truth)", "",
     [](node_config& c, const std::string& v) -> std::string {
       c.seeds.clear();
       std::stringstream list{v};
       for (std::string one; std::getline(list, one, ',');) {
         endpoint e;
         if (auto why = parse_endpoint(one, e); !why.empty())
           return why;
         c.seeds.push_back(e);
       }
       return "";
     }},
    {"--shard-lease-ms", "EMPORIUM_SHARD_LEASE_MS", "MS",
     "a shard's lease; renewed every third of it, taken over once it lapsed", "1500",
     NUMBER(shard_lease, 150, 600000, MILLIS)},
    {"--cluster-cert", "EMPORIUM_CLUSTER_CERT", "FILE", "this node's certificate (PEM) for peer TLS",
     "", TEXT(cluster_cert)},
    {"--cluster-key", "EMPORIUM_CLUSTER_KEY", "FILE", "its private key (PEM)", "", TEXT(cluster_key)},
    {"--cluster-ca", "EMPORIUM_CLUSTER_CA", "FILE", "the CA peers' certificates must be signed by",
     "", TEXT(cluster_ca)},
    {"--io-threads", "EMPORIUM_IO_THREADS", "N", "HTTP I/O threads [max(2, cores/2); 1 on 1 core]",
     nullptr, NUMBER(io_threads, 1, 256, SIZE)},
    {"--actor-threads", "EMPORIUM_ACTOR_THREADS", "N", "CAF scheduler threads [cores - io threads, >= 1]",
     nullptr, NUMBER(actor_threads, 1, 256, SIZE)},
    {"--store-connections", "EMPORIUM_STORE_CONNECTIONS", "N", "PostgreSQL connections", "4",
     NUMBER(store_connections, 1, 256, SIZE)},
    {"--passivate-after", "EMPORIUM_PASSIVATE_AFTER", "SECONDS",
     "idle time before an entity stops (0: never)", "600", NUMBER(passivate_after, 0, 30 * day, SECONDS)},
    {"--default-hold-ttl", "EMPORIUM_DEFAULT_HOLD_TTL", "SECONDS", "reservation TTL when none given",
     "900", NUMBER(default_hold_ttl_s, 1, 30 * day, SAME)},
    {"--max-hold-ttl", "EMPORIUM_MAX_HOLD_TTL", "SECONDS", "largest ttl_s accepted", "3600",
     NUMBER(max_hold_ttl_s, 1, 30 * day, SAME)},
    {"--cart-ttl", "EMPORIUM_CART_TTL", "SECONDS", "idle time before a cart expires", "604800",
     NUMBER(cart_ttl, 1, 365 * day, SECONDS)},
    {"--cart-line-limit", "EMPORIUM_CART_LINE_LIMIT", "N", "largest quantity of one cart line", "50",
     NUMBER(cart_line_limit, 1, 1000000, SAME)},
    {"--payment-primary", "EMPORIUM_PAYMENT_PRIMARY", "URL", "base URL of the primary payment provider",
     "", TEXT(payment_primary)},
    {"--payment-secondary", "EMPORIUM_PAYMENT_SECONDARY", "URL", "base URL of the fallback provider",
     "", TEXT(payment_secondary)},
    {"--payment-timeout-ms", "EMPORIUM_PAYMENT_TIMEOUT_MS", "MS", "one provider call, connect to answer",
     "2000", NUMBER(payment_timeout, 1, 600000, MILLIS)},
    {"--payment-retry-ms", "EMPORIUM_PAYMENT_RETRY_MS", "MS",
     "first wait of a queued payment (doubles up to 60 s)", "5000", NUMBER(payment_retry, 1, 3600000, MILLIS)},
    {"--payment-max-wait", "EMPORIUM_PAYMENT_MAX_WAIT", "SECONDS",
     "a queued payment's order is cancelled after", "1800", NUMBER(payment_max_wait, 1, 30 * day, SECONDS)},
    {"--body-limit", "EMPORIUM_BODY_LIMIT", "BYTES", "request body limit (413 above)", "1048576",
     NUMBER(body_limit, 1, int64_t{1} << 30, SIZE)},
    {"--request-timeout", "EMPORIUM_REQUEST_TIMEOUT", "SECONDS", "time to read one request; keep-alive idle",
     "15", NUMBER(request_timeout, 1, 3600, SECONDS)},
    {"--statement-timeout-ms", "EMPORIUM_STATEMENT_TIMEOUT_MS", "MS", "PostgreSQL cancels longer statements",
     "5000", NUMBER(statement_timeout, 1, 600000, MILLIS)},
    {"--actor-timeout-ms", "EMPORIUM_ACTOR_TIMEOUT_MS", "MS",
     "a read without an answer by then gets 503 (a write waits for its outcome)", "10000", NUMBER(actor_timeout, 1, 600000, MILLIS)},
    {"--ws-idle-timeout", "EMPORIUM_WS_IDLE_TIMEOUT", "SECONDS",
     "a silent WebSocket is pinged at half, closed at", "30", NUMBER(ws_idle_timeout, 1, 3600, SECONDS)},
    {"--ws-max-subscriptions", "EMPORIUM_WS_MAX_SUBSCRIPTIONS", "N", "topics per storefront WebSocket",
     "100", NUMBER(ws_max_subscriptions, 1, 100000, SIZE)},
    {"--rate-limit-public", "EMPORIUM_RATE_LIMIT_PUBLIC", "RATE:BURST",
     "token bucket per client address on /v1 without a token (requests/s : bucket; 0: off)", "50:100",
     [](node_config& c, const std::string& v) -> std::string {
       std::string why;
       auto r = gateway::parse_rate_limit(v, why);
       if (r)
         c.rate_limit_public = *r;
       return why;
     }},
    {"--rate-limit-customer", "EMPORIUM_RATE_LIMIT_CUSTOMER", "RATE:BURST",
     "token bucket per customer (the token's sub; 0: off); warehouse and ops are not limited",
     "20:60",
     [](node_config& c, const std::string& v) -> std::string {
       std::string why;
       auto r = gateway::parse_rate_limit(v, why);
       if (r)
         c.rate_limit_customer = *r;
       return why;
     }},
    {"--trusted-proxies", "EMPORIUM_TRUSTED_PROXIES", "ADDR[/PREFIX],...",
     "peers whose X-Forwarded-For names the client (its last untrusted address)", "",
     [](node_config& c, const std::string& v) -> std::string {
       std::string why;
       auto n = gateway::parse_networks(v, why);
       if (n)
         c.trusted_proxies = std::move(*n);
       return why;
     }},
    {"--max-inflight", "EMPORIUM_MAX_INFLIGHT", "N",
     "requests waiting on actors; beyond, 503 at once", "4096", NUMBER(max_inflight, 1, 10000000, SIZE)},
    {"--max-connections", "EMPORIUM_MAX_CONNECTIONS", "N",
     "open connections (HTTP and WebSocket); beyond, 503 and closed", "10000",
     NUMBER(max_connections, 1, 10000000, SIZE)},
    {"--failure-hook", "EMPORIUM_FAILURE_HOOK", "0|1",
     "tests: POST /v1/debug/crash (ops) crashes an actor; needs a build with the hook", "0",
     [](node_config& c, const std::string& v) -> std::string {
       if (v != "0" && v != "1")
         return "must be 0 or 1";
       c.failure_hook = v == "1";
       return {};
     }},
    {"--log-format", "EMPORIUM_LOG_FORMAT", "json|text", "log lines as JSON or text", "json",
     [](node_config& c, const std::string& v) -> std::string {
       if (v != "json" && v != "text")
         return "must be json or text";
       c.log_format = v;
       return "";
     }},
  };
  return table;
}

} // namespace

/// addr:port, the address an IPv4 or IPv6 literal ([::1] or ::1), port 1..65535.
std::string redact_dsn(std::string dsn) {
  if (auto scheme = dsn.find("://"); scheme != std::string::npos) {
    auto at = dsn.find('@', scheme + 3);
    auto colon = dsn.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at)
      dsn.replace(colon + 1, at - colon - 1, "***");
  }
  for (size_t pos = 0; (pos = dsn.find("password=", pos)) != std::string::npos;) {
    pos += 9;
    auto end = dsn.find_first_of(" &", pos);
    dsn.replace(pos, (end == std::string::npos ? dsn.size() : end) - pos, "***");
  }
  return dsn;
}

bool is_loopback(const std::string& host) {
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1)
    return buf[0] == 127;
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(buf, buf + 16, one);
  }
  return false;
}

std::string parse_endpoint(const std::string& s, endpoint& out) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return "must be ADDRESS:PORT";
  auto host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) != 1 && inet_pton(AF_INET6, host.c_str(), buf) != 1)
    return "address '" + host + "' is not an IP address";
  auto port = integer(s.substr(colon + 1), 1, 65535);
  if (!port)
    return "port must be from 1 to 65535, got '" + s.substr(colon + 1) + "'";
  out = endpoint{host, static_cast<uint16_t>(*port)};
  return "";
}

flag_list read_flags(int argc, char** argv, int first) {
  flag_list out;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a.size() < 3) {
      out.error = "unexpected argument '" + a + "' (see --help)";
      return out;
    }
    if (i + 1 >= argc) {
      out.error = a + " needs a value (see --help)";
      return out;
    }
    out.values[a] = argv[++i];
  }
  return out;
}

std::string setting(const flag_list& flags, const char* flag, const char* env, std::string fallback) {
  if (auto i = flags.values.find(flag); i != flags.values.end())
    return i->second;
  if (auto* e = std::getenv(env); e != nullptr && *e != '\0')
    return e;
  return fallback;
}

std::pair<std::optional<node_config>, std::string> parse_node_config(const flag_list& flags) {
  if (!flags.error.empty())
    return {std::nullopt, flags.error};
  for (auto& [flag, value] : flags.values) {
    bool known = false;
    for (auto& r : rows())
      known = known || flag == r.flag;
    if (!known)
      return {std::nullopt, "unknown flag " + flag + " (see --help)"};
  }
  node_config c;
  for (auto& r : rows()) {
    auto given = flags.values.count(r.flag) > 0 || (std::getenv(r.env) && *std::getenv(r.env));
    if (!given && r.fallback == nullptr)
      continue;
    auto v = setting(flags, r.flag, r.env, r.fallback ? r.fallback : "");
    if (auto why = r.apply(c, v); !why.empty())
      return {std::nullopt, std::string{r.flag} + " (" + r.env + "): " + why};
  }
  if (c.jwt_secret.empty())
    return {std::nullopt, "--jwt-secret (EMPORIUM_JWT_SECRET) is required"};
  if (c.default_hold_ttl_s > c.max_hold_ttl_s)
    return {std::nullopt, "--default-hold-ttl must not exceed --max-hold-ttl"};
  auto tls_parts = int{!c.cluster_cert.empty()} + int{!c.cluster_key.empty()}
                   + int{!c.cluster_ca.empty()};
  if (tls_parts != 0 && tls_parts != 3)
    return {std::nullopt, "EMPORIUM_CLUSTER_CERT, EMPORIUM_CLUSTER_KEY and EMPORIUM_CLUSTER_CA "
                          "go together: set all three or none"};
  if (tls_parts == 0 && !is_loopback(c.cluster.host))
    return {std::nullopt, "--cluster (EMPORIUM_CLUSTER): " + c.cluster.host
                            + " is not a loopback address; peer traffic off this machine needs "
                              "mutual TLS (EMPORIUM_CLUSTER_CERT, EMPORIUM_CLUSTER_KEY, "
                              "EMPORIUM_CLUSTER_CA)"};
  return {std::move(c), ""};
}

std::string serve_options_help() {
  std::string out;
  for (auto& r : rows()) {
    std::string left = std::string{"  "} + r.flag + " " + r.value;
    left.resize(std::max<size_t>(left.size() + 1, 30), ' ');
    std::string env = r.env;
    env.resize(std::max<size_t>(env.size() + 1, 30), ' ');
    out += left + env + r.help;
    if (r.fallback != nullptr && *r.fallback != '\0')
      out += std::string{" ["} + r.fallback + "]";
    out += "\n";
  }
  return out;
}

} // namespace emporium::app
