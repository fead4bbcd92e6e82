#pragma once

#include "protocols/actors.hpp"
#include "cluster/live_feed.hpp"
#include "cluster/stock_view.hpp"
#include "gateway/rate_limit.hpp"

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace emporium::gateway {

struct gateway_config {
  std::string address = "127.0.0.1";
  uint16_t port = 8080; ///< 0: any free port (start() returns it)
  size_t io_threads = 1;
  size_t body_limit = 1 << 20;   ///< bytes; larger bodies get 413
  size_t header_limit = 8 << 10; ///< bytes; larger headers get 413
  std::chrono::seconds request_timeout{15}; ///< to read one request, and keep-alive idle
  std::chrono::milliseconds actor_timeout{10000}; ///< deadline for an actor's answer
  std::string jwt_secret;
  int64_t default_hold_ttl_s = 900;
  int64_t max_hold_ttl_s = 3600;
  /// WebSockets: a connection silent this long is pinged, and closed if still
  /// silent after as long again.
  std::chrono::seconds ws_idle_timeout{30};
  size_t ws_max_subscriptions = 100; ///< per storefront connection
  size_t ws_max_in_flight = 1024;    ///< warehouse items awaiting durability per connection
  /// Token buckets per client on /v1 routes: by IP without a (valid) token,
  /// by `sub` for customers; warehouse and ops tokens are not limited.
  rate_limit public_limit{50, 100};
  rate_limit customer_limit{20, 60};
  size_t rate_limit_clients = 100000; ///< keys per limiter (memory bound)
  std::vector<ip_network> trusted_proxies; ///< whose X-Forwarded-For names the client
  size_t max_inflight = 4096;      ///< requests waiting on actors; beyond, 503 at once
  size_t max_connections = 10000;  ///< open connections; beyond, 503 and closed
  /// The failure-injection hook behind POST /v1/debug/crash (ops): crashes
  /// an actor of `kind` ("payment_adapter", "outbox_relay", "store_worker",
  /// or an entity kind with `id`); false for an unknown kind. Null (release
  /// builds, or not enabled): the route answers 404.
  std::function<bool(const std::string& kind, const std::string& id)> failure_hook;
};

/// What the gateway talks to: entities by key (through cluster/seam), and
/// whatever answers readiness (app/ wires the store). It never sees SQL.
struct gateway_deps {
  caf::actor_system& sys;
  protocols::entity_resolver resolve;
  protocols::health_actor health;
  /// Durable levels of this node's live pairs: pair reads found here are
  /// answered on the I/O thread (null: always ask the actors).
  std::shared_ptr<const cluster::stock_view> stock_view;
  /// Live changes for the storefront WebSocket (null: /v1/ws is 404).
  std::shared_ptr<cluster::live_feed> feed;
  /// Shards, leases and membership as this node sees them (null: a router
  /// without a cluster, as in some tests: /v1/cluster is 404, readiness asks
  /// only PostgreSQL).
  std::shared_ptr<const cluster::shard_table> shards;
  /// The membership table (protocols::membership_actor), for the drain route.
  caf::actor membership;
};

/// The Boost.Beast HTTP/1.1 front door: async, keep-alive, one strand per
/// connection, `io_threads` threads; `/v1/ws` and `/v1/warehouses/{wh}/ws`
/// upgrade to WebSockets. Requests become actor messages through a
/// few bridge actors; answers come back to the connection's strand.
class server {
public:
  server(gateway_config cfg, gateway_deps deps);
  ~server();

  /// Binds and starts serving; returns the bound port.
  caf::expected<uint16_t> start();

  /// Stops accepting, lets in-flight requests finish (up to `grace`), closes.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds{10});

  /// The failure hook's way in: crashes bridge actor `i` (mod their count).
  void crash_bridge(size_t i);

  struct impl; ///< shared with the connections (internal.hpp, listener.cpp)

private:
  std::shared_ptr<impl> impl_;
};

} // namespace emporium::gateway
