// Shared by the gateway's Beast translation units (listener, http_session,
// storefront_ws, warehouse_ws): the server's internals and the bridge to the
// actors. Not part of the folder's interface.
#pragma once

#include "gateway/server.hpp"

#include "cluster/seam.hpp"
#include "gateway/errors.hpp"
#include "gateway/exchange.hpp"
#include "gateway/json_codec.hpp"
#include "gateway/jwt.hpp"
#include "protocols/envelope.hpp"
#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/logging.hpp"
#include "protocols/metrics.hpp"
#include "protocols/supervisor.hpp"

#include <caf/actor_system.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

namespace emporium::gateway {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace json = boost::json;
using tcp = net::ip::tcp;
using namespace protocols;

/// A piece of work for a bridge actor: it runs inside the actor, so it may
/// send requests and register response handlers.
struct bridge_job {
  std::function<void(caf::event_based_actor*)> run;
};

} // namespace emporium::gateway

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(emporium::gateway::bridge_job)

namespace emporium::gateway {

/// Seconds since the epoch (a token's `exp` is in these).
inline int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// The folder's logger ("gateway").
inline spdlog::logger* log() {
  static auto instance = named_logger("gateway");
  return instance.get();
}

/// What the connections share: configuration, dependencies, the I/O context
/// and the bridge actors.
struct server::impl : std::enable_shared_from_this<server::impl> {
  impl(gateway_config c, gateway_deps d)
    : cfg(std::move(c)), deps(std::move(d)), ioc(static_cast<int>(cfg.io_threads)),
      acceptor(ioc), public_limit(cfg.public_limit, cfg.rate_limit_clients),
      customer_limit(cfg.customer_limit, cfg.rate_limit_clients) {
  }

  gateway_config cfg;
  gateway_deps deps;
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::unique_ptr<protocols::actor_group> bridges; ///< from start() on
  std::atomic<size_t> next_bridge{0};
  std::atomic<int64_t> in_flight{0};   ///< requests read and not yet answered (stop waits)
  std::atomic<int64_t> waiting{0};     ///< requests waiting on an actor (max_inflight)
  std::atomic<int64_t> connections{0}; ///< open connections, HTTP and WebSocket (max_connections)
  std::atomic<bool> stopping{false};
  rate_limiter public_limit;
  rate_limiter customer_limit;

  void accept();

  /// One of max_connections, held by a connection's session for its life
  /// (handed on to its WebSocket after an upgrade).
  std::shared_ptr<void> connection_slot() {
    ++connections;
    return std::shared_ptr<void>(nullptr, [self = shared_from_this()](void*) { --self->connections; });
  }

  /// Asks `target` (inside a bridge actor) and calls `done` with the answer
  /// on the calling connection's executor. No CAF timeout: registering one per
  /// request with CAF's clock thread cost a third of the read throughput in
  /// bench runs; the connection keeps the deadline on its own strand instead.
  template <class T, class Executor, class Done>
  void ask(size_t bridge, caf::actor target, caf::message msg, Executor ex, Done done) {
    auto deliver = [ex, done = std::make_shared<Done>(std::move(done))](caf::expected<T> r) {
      net::post(ex, [done, r = std::move(r)]() mutable { (*done)(std::move(r)); });
    };
    run_in_bridge(bridge, request_job<T>(std::move(target), std::move(msg),
                                         std::make_shared<answer_once<T, decltype(deliver)>>(
                                           std::move(deliver))));
  }

  /// Runs `job` inside bridge `i` (its current instance: bridges are
  /// restarted after a crash, protocols::actor_group).
  void run_in_bridge(size_t i, std::function<void(caf::event_based_actor*)> job) {
    caf::anon_send((*bridges)[i], bridge_job{std::move(job)});
  }

  /// The bridge a new connection uses for its life.
  size_t pick_bridge() { return next_bridge++ % bridges->size(); }
};

/// Requests refused by the limits: `emporium_rate_limited_total{class}` and
/// `emporium_shed_total{reason}` (inflight, connections, clients).
struct limit_metrics {
  prometheus::Counter* limited_public;
  prometheus::Counter* limited_customer;
  prometheus::Counter* shed_inflight;
  prometheus::Counter* shed_connections;
  prometheus::Counter* shed_clients;
  static limit_metrics& get();
};

/// Serves one accepted connection as HTTP (http_session.cpp); `slot` is its
/// share of max_connections.
void serve_http(tcp::socket socket, std::shared_ptr<server::impl> srv, size_t bridge,
                std::shared_ptr<void> slot);

/// Takes over an upgraded connection as the storefront WebSocket (`/v1/ws`).
/// `who` is the caller if the upgrade carried a valid token.
void serve_storefront_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                         std::shared_ptr<server::impl> srv, size_t bridge,
                         std::optional<principal> who, std::shared_ptr<void> slot);

/// Takes over an upgraded connection as the warehouse stock push of `wh`
/// (`/v1/warehouses/{wh}/ws`); `who` may push for `wh`.
void serve_warehouse_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                        std::shared_ptr<server::impl> srv, size_t bridge, principal who,
                        std::string wh, std::shared_ptr<void> slot);

} // namespace emporium::gateway
