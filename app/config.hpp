#pragma once

#include "gateway/rate_limit.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

/// The node's configuration: parsed and validated in one place, from flags
/// and EMPORIUM_* variables (a flag wins), with one table behind both the
/// parser and `emporium --help`.
namespace emporium::app {

struct endpoint {
  std::string host;
  uint16_t port = 0;
};

/// Everything `emporium serve` is told.
struct node_config {
  endpoint http{"127.0.0.1", 8080};
  std::string pg = "postgresql://postgres@127.0.0.1:55432/emporium";
  std::string kafka = "embedded";
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  int kafka_partitions = 6;
  std::chrono::milliseconds kafka_timeout{5000};
  std::string jwt_secret;
  std::string node_id = "node-1";
  size_t io_threads = 0;    ///< 0: max(2, cores / 2), 1 on one core
  size_t actor_threads = 0; ///< 0: cores - io threads, at least 1
  size_t store_connections = 4;
  std::chrono::seconds passivate_after{600};
  int64_t default_hold_ttl_s = 900;
  int64_t max_hold_ttl_s = 3600;
  std::chrono::seconds cart_ttl{7 * 24 * 3600};
  int64_t cart_line_limit = 50;
  std::string payment_primary;
  std::string payment_secondary;
  std::chrono::milliseconds payment_timeout{2000};
  std::chrono::milliseconds payment_retry{5000};
  std::chrono::seconds payment_max_wait{1800};
  size_t body_limit = 1 << 20;
  std::chrono::seconds request_timeout{15};
  std::chrono::milliseconds statement_timeout{5000};
  std::chrono::milliseconds actor_timeout{10000};
  std::chrono::seconds ws_idle_timeout{30};
  size_t ws_max_subscriptions = 100;
  gateway::rate_limit rate_limit_public{50, 100};
  gateway::rate_limit rate_limit_customer{20, 60};
  std::vector<gateway::ip_network> trusted_proxies;
  size_t max_inflight = 4096;
  size_t max_connections = 10000;
  bool failure_hook = false; ///< POST /v1/debug/crash (builds with EMPORIUM_FAILURE_HOOK only)
  std::string log_format = "json";
  /// Cluster: where peers reach this node's middleman, whom to join, the
  /// lease of a shard, and mutual TLS between nodes (all three or none).
  endpoint cluster{"127.0.0.1", 7070};
  std::vector<endpoint> seeds;
  std::chrono::milliseconds shard_lease{1500};
  std::string cluster_cert;
  std::string cluster_key;
  std::string cluster_ca;
};

/// Reads ADDR:PORT (an IPv4 or IPv6 literal, port 1..65535) into `out`:
/// "" or why not.
std::string parse_endpoint(const std::string& s, endpoint& out);

/// Whether an IP literal is a loopback address (127.0.0.0/8, ::1).
bool is_loopback(const std::string& host);

/// A libpq URL or key=value string for logs: the password replaced by "***"
/// ("postgresql://u:***@h/db", "password=***").
std::string redact_dsn(std::string dsn);

/// Flags as given: `--name value` pairs, or why they are not.
struct flag_list {
  std::map<std::string, std::string> values;
  std::string error; ///< non-empty: a stray word or a flag without a value
};

flag_list read_flags(int argc, char** argv, int first);

/// The configuration of `serve`, or a message naming the flag and variable
/// that is unknown or malformed (the caller exits 2 with it).
std::pair<std::optional<node_config>, std::string> parse_node_config(const flag_list& flags);

/// The "Options of serve" part of --help, from the same table.
std::string serve_options_help();

/// A flag's value, else the variable's, else `fallback` (for the small commands).
std::string setting(const flag_list& flags, const char* flag, const char* env, std::string fallback);

} // namespace emporium::app
