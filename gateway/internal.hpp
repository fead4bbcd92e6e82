// Shared by the gateway's two Beast translation units (server.cpp: HTTP;
// websocket.cpp: the WebSockets): the server's internals and the bridge to
// the actors. Not part of the folder's interface.
#pragma once

#include "gateway/server.hpp"

#include "gateway/jwt.hpp"
#include "protocols/envelope.hpp"
#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/logging.hpp"
#include "protocols/metrics.hpp"

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
#include <initializer_list>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>
#include <variant>
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
      acceptor(ioc) {
  }

  gateway_config cfg;
  gateway_deps deps;
  net::io_context ioc;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::vector<caf::actor> bridges;
  std::atomic<size_t> next_bridge{0};
  std::atomic<int64_t> in_flight{0};
  std::atomic<bool> stopping{false};

  void accept();

  /// Asks `target` (inside a bridge actor) and calls `done` with the answer
  /// on the calling connection's executor. No CAF timeout: registering one per
  /// request with CAF's clock thread cost a third of the read throughput in
  /// bench runs; the connection keeps the deadline on its own strand instead.
  template <class T, class Executor, class Done>
  void ask(const caf::actor& bridge, caf::actor target, caf::message msg, Executor ex, Done done) {
    caf::anon_send(bridge, bridge_job{[target = std::move(target), msg = std::move(msg), ex,
                                       done = std::move(done)](caf::event_based_actor* self) mutable {
      auto shared = std::make_shared<Done>(std::move(done));
      self->request(target, caf::infinite, std::move(msg))
        .then(
          [ex, shared](T& x) {
            net::post(ex, [shared, x = std::move(x)]() mutable {
              (*shared)(caf::expected<T>{std::move(x)});
            });
          },
          [ex, shared](caf::error& e) {
            net::post(ex, [shared, e = std::move(e)]() mutable {
              (*shared)(caf::expected<T>{std::move(e)});
            });
          });
    }});
  }
};

// -- request body validation ------------------------------------------------------------

/// A 400 with the field named.
struct field_error {
  errc code;
  std::string field;
  std::string message;
};

/// Strict reader of a JSON object body: unknown fields, wrong types, numbers
/// outside int64 and ids outside the contract's pattern are field errors.
class body_reader {
public:
  static std::variant<body_reader, field_error> parse(std::string_view body,
                                                      std::initializer_list<const char*> allowed) {
    json::error_code ec;
    json::parse_options opts;
    opts.max_depth = 8;
    auto v = json::parse(body, ec, {}, opts);
    if (ec)
      return field_error{errc::bad_json, "", "body is not valid JSON"};
    return read(std::move(v), allowed);
  }

  /// The same for a value already parsed (an item of a batch).
  static std::variant<body_reader, field_error> read(json::value v,
                                                     std::initializer_list<const char*> allowed) {
    if (!v.is_object())
      return field_error{errc::bad_json, "", "body must be a JSON object"};
    for (auto& kv : v.as_object()) {
      bool known = false;
      for (auto* a : allowed)
        known = known || kv.key() == a;
      if (!known)
        return field_error{errc::invalid_field, std::string{kv.key()}, "unknown field"};
    }
    return body_reader{std::move(v.as_object())};
  }

  /// An integer in [lo, hi]; absent is allowed unless `required`.
  std::optional<int64_t> integer(const char* name, bool required, int64_t lo, int64_t hi) {
    auto* v = obj_.if_contains(name);
    if (v == nullptr) {
      if (required)
        fail(name, "is required");
      return std::nullopt;
    }
    if (v->is_uint64() || (v->is_double() && std::abs(v->as_double()) >= 9.2e18))
      return fail(name, "is out of range (64-bit integer)");
    if (!v->is_int64())
      return fail(name, "must be an integer");
    auto x = v->as_int64();
    if (x < lo || x > hi)
      return fail(name, lo == 0 && x < 0 ? "must not be negative"
                                         : "is out of range");
    return x;
  }

  /// A string; `id` checks the contract's id pattern.
  std::optional<std::string> string(const char* name, bool required, bool id, size_t max = 256) {
    auto* v = obj_.if_contains(name);
    if (v == nullptr) {
      if (required)
        fail(name, "is required");
      return std::nullopt;
    }
    if (!v->is_string())
      return failed_string(name, "must be a string");
    std::string s{v->as_string()};
    if (id && !valid_id(s))
      return failed_string(name, "is not a valid id");
    if (s.size() > max)
      return failed_string(name, "is too long");
    return s;
  }

  /// A nested object of `allowed` fields, read as strictly; its fields are
  /// named "name.field" in errors.
  std::optional<body_reader> object(const char* name, bool required,
                                    std::initializer_list<const char*> allowed) {
    auto* v = obj_.if_contains(name);
    if (v == nullptr) {
      if (required)
        fail(name, "is required");
      return std::nullopt;
    }
    if (!v->is_object()) {
      fail(name, "must be an object");
      return std::nullopt;
    }
    for (auto& kv : v->as_object()) {
      bool known = allowed.size() == 0;
      for (auto* a : allowed)
        known = known || kv.key() == a;
      if (!known) {
        if (!error)
          error = field_error{errc::invalid_field, std::string{name} + "." + std::string{kv.key()},
                              "unknown field"};
        return std::nullopt;
      }
    }
    body_reader inner{v->as_object()};
    inner.prefix_ = prefix_ + name + ".";
    return inner;
  }

  const json::object& fields() const { return obj_; }

  std::optional<field_error> error;

private:
  explicit body_reader(json::object obj) : obj_(std::move(obj)) {
  }
  std::nullopt_t fail(const char* name, const char* what) {
    if (!error)
      error = field_error{errc::invalid_field, prefix_ + name, prefix_ + name + " " + what};
    return std::nullopt;
  }
  std::optional<std::string> failed_string(const char* name, const char* what) {
    fail(name, what);
    return std::nullopt;
  }
  json::object obj_;
  std::string prefix_; ///< "payment." inside a nested object
};

/// Takes over an upgraded connection as the storefront WebSocket (`/v1/ws`).
/// `who` is the caller if the upgrade carried a valid token.
void serve_storefront_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                         std::shared_ptr<server::impl> srv, caf::actor bridge,
                         std::optional<principal> who);

/// Takes over an upgraded connection as the warehouse stock push of `wh`
/// (`/v1/warehouses/{wh}/ws`); `who` may push for `wh`.
void serve_warehouse_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                        std::shared_ptr<server::impl> srv, caf::actor bridge, principal who,
                        std::string wh);

} // namespace emporium::gateway
