// The gateway's HTTP side (one of its two Beast translation units: Beast is
// slow to compile; the WebSockets are in websocket.cpp).
#include "gateway/internal.hpp"

#include <boost/beast/websocket/rfc6455.hpp>

#include <openssl/sha.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <unordered_map>

namespace emporium::gateway {

namespace {

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

// -- metrics ----------------------------------------------------------------------

struct http_metrics {
  prometheus::Family<prometheus::Counter>* count;
  prometheus::Family<prometheus::Histogram>* latency;

  static http_metrics& get() {
    static http_metrics instance{
      &prometheus::BuildCounter()
         .Name("emporium_http_requests_total")
         .Help("HTTP requests by route, method and status")
         .Register(metrics::registry()),
      &prometheus::BuildHistogram()
         .Name("emporium_http_request_duration_seconds")
         .Help("HTTP request latency by route and status")
         .Register(metrics::registry())};
    return instance;
  }

  /// Series pointers cached per I/O thread: no shared lookup after warm-up.
  static void observe(const char* route, const char* method, unsigned status, double secs) {
    struct series {
      prometheus::Counter* count;
      prometheus::Histogram* latency;
    };
    thread_local std::map<std::tuple<const char*, const char*, unsigned>, series> cache;
    auto key = std::make_tuple(route, method, status);
    auto i = cache.find(key);
    if (i == cache.end()) {
      auto& m = get();
      auto st = std::to_string(status);
      series s{&m.count->Add({{"route", route}, {"method", method}, {"status", st}}),
               &m.latency->Add({{"route", route}, {"status", st}}, metrics::latency_buckets())};
      i = cache.emplace(key, s).first;
    }
    i->second.count->Increment();
    i->second.latency->Observe(secs);
  }
};

/// prefix + 24 hex digits of SHA-256(sub, key): stable across retries and nodes.
bool valid_currency(std::string_view c) {
  return c.size() == 3 && std::all_of(c.begin(), c.end(), [](char x) { return x >= 'A' && x <= 'Z'; });
}

std::string derived_id(std::string_view prefix, std::string_view sub, std::string_view key) {
  std::string input{sub};
  input += '\x1f';
  input += key;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out{prefix};
  for (int i = 0; i < 12; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xF];
  }
  return out;
}

std::vector<std::string_view> split_path(std::string_view target) {
  if (auto q = target.find('?'); q != std::string_view::npos)
    target = target.substr(0, q);
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < target.size()) {
    if (target[i] == '/') {
      ++i;
      continue;
    }
    auto j = target.find('/', i);
    if (j == std::string_view::npos)
      j = target.size();
    out.push_back(target.substr(i, j - i));
    i = j;
  }
  return out;
}

} // namespace

// -- server internals -------------------------------------------------------------

class session;

/// One HTTP connection: read a request, answer it, repeat while keep-alive.
class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket&& socket, std::shared_ptr<server::impl> srv, caf::actor bridge)
    : stream_(std::move(socket)), deadline_(stream_.get_executor()), srv_(std::move(srv)),
      bridge_(std::move(bridge)) {
  }

  void start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&session::do_read, shared_from_this()));
  }

private:
  // -- reading and writing ------------------------------------------------------------

  void do_read() {
    parser_.emplace();
    parser_->body_limit(srv_->cfg.body_limit);
    parser_->header_limit(static_cast<uint32_t>(srv_->cfg.header_limit));
    stream_.expires_after(srv_->cfg.request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout
        || ec == net::error::operation_aborted)
      return close();
    route_ = "unmatched";
    method_ = "OTHER";
    started_ = std::chrono::steady_clock::now();
    request_id_ = new_id("req_");
    keep_alive_ = false;
    if (ec == http::error::body_limit)
      return fail(errc::too_large, "body over the limit of "
                                     + std::to_string(srv_->cfg.body_limit) + " bytes");
    if (ec == http::error::header_limit)
      return fail(errc::too_large, "headers over the limit of "
                                     + std::to_string(srv_->cfg.header_limit) + " bytes");
    if (ec) {
      if (parser_->got_some())
        return fail(errc::bad_json, "malformed HTTP request");
      return close();
    }
    req_ = parser_->release();
    keep_alive_ = req_.keep_alive() && !srv_->stopping.load();
    if (auto id = req_["X-Request-Id"]; !id.empty() && valid_id(id))
      request_id_ = std::string{id};
    ++srv_->in_flight;
    counted_ = true;
    dispatch();
  }

  /// Asks an actor for this request. The answer reaches `done` on this
  /// connection's strand, unless the deadline answered 503 first (then the
  /// late answer is dropped).
  template <class T, class Done>
  void ask(caf::actor target, caf::message msg, Done done) {
    auto gen = ++generation_;
    waiting_since_ = std::chrono::steady_clock::now();
    waiting_ = true;
    if (!deadline_armed_)
      arm_deadline(srv_->cfg.actor_timeout);
    srv_->ask<T>(bridge_, std::move(target), std::move(msg), stream_.get_executor(),
                 [self = shared_from_this(), gen, done = std::move(done)](caf::expected<T> r) mutable {
                   if (gen != self->generation_)
                     return; // answered already (deadline)
                   self->waiting_ = false;
                   done(std::move(r));
                 });
  }

  /// The deadline timer is armed at most once per period, not per request:
  /// when it fires it checks how long the current wait has lasted.
  void arm_deadline(std::chrono::steady_clock::duration d) {
    deadline_armed_ = true;
    deadline_.expires_after(d);
    deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->deadline_armed_ = false;
      if (ec || !self->waiting_)
        return;
      auto waited = std::chrono::steady_clock::now() - self->waiting_since_;
      if (waited >= self->srv_->cfg.actor_timeout)
        self->fail(errc::unavailable, "no answer in time, retry later");
      else
        self->arm_deadline(self->srv_->cfg.actor_timeout - waited);
    });
  }

  void respond(http::status status, json::object body, unsigned retry_after = 0) {
    ++generation_; // whatever is still on its way for this request is dropped
    waiting_ = false;
    res_ = {};
    res_.version(req_.version() == 10 ? 10 : 11);
    res_.result(status);
    res_.set(http::field::server, "emporium");
    res_.set(http::field::content_type, "application/json");
    res_.set("X-Request-Id", request_id_);
    if (retry_after > 0)
      res_.set(http::field::retry_after, std::to_string(retry_after));
    res_.keep_alive(keep_alive_);
    res_.body() = json::serialize(body);
    send(static_cast<unsigned>(status));
  }

  void respond_text(http::status status, std::string body, const char* content_type) {
    ++generation_;
    waiting_ = false;
    res_ = {};
    res_.version(11);
    res_.result(status);
    res_.set(http::field::content_type, content_type);
    res_.set("X-Request-Id", request_id_);
    res_.keep_alive(keep_alive_);
    res_.body() = std::move(body);
    send(static_cast<unsigned>(status));
  }

  void send(unsigned status) {
    res_.prepare_payload();
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    http_metrics::observe(route_, method_, status, secs);
    if (status >= 500)
      log()->warn("event=request_failed request_id={} route={} status={}", request_id_, route_,
                  status);
    else
      log()->debug("event=request request_id={} method={} route={} status={} ms={:.3f}",
                   request_id_, method_, route_, status, secs * 1000);
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, size_t) {
    if (counted_) {
      --srv_->in_flight;
      counted_ = false;
    }
    if (ec || !keep_alive_)
      return close();
    do_read();
  }

  void close() {
    deadline_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  void fail(const error_reply& r) {
    respond(static_cast<http::status>(r.status), r.body, r.retry_after);
  }
  void fail(errc code, std::string message) { fail(to_reply(code, std::move(message))); }
  void fail(const field_error& e) { fail(to_reply(e)); }
  /// An actor's error: its errc, its message, and for insufficient_stock `available`.
  void fail(const caf::error& err) { fail(to_reply(err)); }

  // -- auth -----------------------------------------------------------------------

  /// The caller, or nullopt after answering 401.
  /// The Authorization header, or on a WebSocket upgrade "Bearer " + the
  /// `access_token` query parameter.
  std::string_view bearer_token() {
    auto h = req_[http::field::authorization];
    if (!h.empty() || !allow_query_token_)
      return h;
    auto target = req_.target();
    auto q = target.find('?');
    if (q == std::string_view::npos)
      return {};
    auto query = target.substr(q + 1);
    for (size_t i = 0; i < query.size();) {
      auto amp = query.find('&', i);
      auto part = query.substr(i, amp == std::string_view::npos ? query.npos : amp - i);
      if (part.rfind("access_token=", 0) == 0) {
        query_token_ = "Bearer " + std::string{part.substr(13)};
        return query_token_;
      }
      if (amp == std::string_view::npos)
        break;
      i = amp + 1;
    }
    return {};
  }

  std::optional<principal> authenticate() {
    auto h = bearer_token();
    if (h.empty()) {
      fail(errc::unauthenticated, "missing bearer token");
      return std::nullopt;
    }
    if (h.size() < 8 || !beast::iequals(h.substr(0, 7), "Bearer ")) {
      fail(errc::unauthenticated, "malformed Authorization header");
      return std::nullopt;
    }
    // Verified tokens are cached per I/O thread, keyed by the whole token
    // (signature included), so only a byte-identical token hits; exp is
    // checked on every use. Saves an HMAC and two JSON parses per request.
    thread_local std::unordered_map<std::string, principal> verified;
    auto token = h.substr(7);
    auto now = now_s();
    if (auto i = verified.find(std::string{token}); i != verified.end()) {
      if (i->second.exp > now)
        return i->second;
      verified.erase(i);
    }
    auto p = verify_jwt(token, srv_->cfg.jwt_secret, now);
    if (!p) {
      fail(p.error());
      return std::nullopt;
    }
    if (verified.size() >= 4096) // bounded: start over rather than track age
      verified.clear();
    verified.emplace(std::string{token}, *p);
    return std::move(*p);
  }

  /// A warehouse token for `wh`, or ops; else nullopt after 401/403.
  std::optional<principal> authorize_warehouse(const std::string& wh) {
    auto p = authorize({"warehouse", "ops"});
    if (p && !p->may_push_for(wh)) {
      fail(errc::forbidden, "token is not for warehouse " + wh);
      return std::nullopt;
    }
    return p;
  }

  /// The body as a strict reader of `allowed` fields, or nullopt after 400.
  std::optional<body_reader> read_body(std::initializer_list<const char*> allowed) {
    auto parsed = body_reader::parse(req_.body(), allowed);
    if (auto* e = std::get_if<field_error>(&parsed)) {
      fail(*e);
      return std::nullopt;
    }
    return std::move(std::get<body_reader>(parsed));
  }

  /// The caller if their role is one of `roles`, else nullopt after 401/403.
  std::optional<principal> authorize(std::initializer_list<std::string_view> roles) {
    auto p = authenticate();
    if (!p)
      return p;
    for (auto r : roles)
      if (p->is(r))
        return p;
    fail(errc::forbidden, "role " + p->role + " may not do this");
    return std::nullopt;
  }

  // -- routing ----------------------------------------------------------------------

  bool method_is(http::verb v, std::initializer_list<http::verb> allowed) {
    for (auto a : allowed)
      if (a == v)
        return true;
    fail(errc::method_not_allowed, "method not allowed on this route");
    return false;
  }

  /// Whether a path segment is a valid id; if not, answers 400 naming `field`.
  bool path_id_ok(const std::string& id, const char* field) {
    if (valid_id(id))
      return true;
    fail(field_error{errc::invalid_field, field, "path id is not a valid id"});
    return false;
  }

  void dispatch() {
    auto path = split_path(req_.target());
    auto verb = req_.method();
    method_ = verb == http::verb::get      ? "GET"
              : verb == http::verb::put    ? "PUT"
              : verb == http::verb::post   ? "POST"
              : verb == http::verb::delete_ ? "DELETE"
                                             : "OTHER";
    auto n = path.size();
    if (n == 1 && path[0] == "healthz") {
      route_ = "/healthz";
      if (method_is(verb, {http::verb::get}))
        respond(http::status::ok, {{"status", "ok"}});
      return;
    }
    if (n == 1 && path[0] == "readyz") {
      route_ = "/readyz";
      if (method_is(verb, {http::verb::get}))
        readyz();
      return;
    }
    if (n == 1 && path[0] == "metrics") {
      route_ = "/metrics";
      if (method_is(verb, {http::verb::get}))
        respond_text(http::status::ok, metrics::serialize(), "text/plain; version=0.0.4");
      return;
    }
    if (n >= 2 && path[0] == "v1") {
      if (n == 2 && path[1] == "ws" && srv_->deps.feed) {
        route_ = "/v1/ws";
        if (method_is(verb, {http::verb::get}))
          upgrade(std::nullopt);
        return;
      }
      if (n == 4 && path[1] == "warehouses" && path[3] == "ws") {
        route_ = "/v1/warehouses/{wh}/ws";
        auto wh = std::string{path[2]};
        if (path_id_ok(wh, "warehouse") && method_is(verb, {http::verb::get}))
          upgrade(wh);
        return;
      }
      // /v1/warehouses/{wh}/stock/{sku}[/adjust]
      if (path[1] == "warehouses" && (n == 5 || n == 6) && path[3] == "stock"
          && (n == 5 || path[5] == "adjust")) {
        route_ = n == 5 ? "/v1/warehouses/{wh}/stock/{sku}"
                        : "/v1/warehouses/{wh}/stock/{sku}/adjust";
        auto wh = std::string{path[2]};
        auto sku = std::string{path[4]};
        if (!path_id_ok(wh, "warehouse") || !path_id_ok(sku, "sku"))
          return;
        if (n == 6) {
          if (method_is(verb, {http::verb::post}))
            adjust(wh, sku);
          return;
        }
        if (!method_is(verb, {http::verb::get, http::verb::put}))
          return;
        return verb == http::verb::get ? get_pair(wh, sku) : push(wh, sku);
      }
      if (path[1] == "stock" && n == 3) {
        route_ = "/v1/stock/{sku}";
        if (!method_is(verb, {http::verb::get}))
          return;
        auto sku = std::string{path[2]};
        if (!path_id_ok(sku, "sku"))
          return;
        return get_sku(sku);
      }
      if (path[1] == "products" && n == 3) {
        route_ = "/v1/products/{sku}";
        if (!method_is(verb, {http::verb::get, http::verb::put}))
          return;
        auto sku = std::string{path[2]};
        if (!path_id_ok(sku, "sku"))
          return;
        return verb == http::verb::get ? get_product_route(sku) : put_product_route(sku);
      }
      if (path[1] == "carts" && n == 2) {
        route_ = "/v1/carts";
        if (method_is(verb, {http::verb::post}))
          create_cart_route();
        return;
      }
      if (path[1] == "carts" && n >= 3) {
        auto id = std::string{path[2]};
        if (n == 3) {
          route_ = "/v1/carts/{id}";
          if (!method_is(verb, {http::verb::get}))
            return;
          if (!valid_id(id))
            return fail(errc::not_found, "unknown cart");
          return get_cart_route(id);
        }
        if (n == 4 && path[3] == "checkout") {
          route_ = "/v1/carts/{id}/checkout";
          if (!method_is(verb, {http::verb::post}))
            return;
          if (!valid_id(id))
            return fail(errc::not_found, "unknown cart");
          return checkout_route(id);
        }
        if (n == 5 && path[3] == "items") {
          route_ = "/v1/carts/{id}/items/{sku}";
          if (!method_is(verb, {http::verb::put, http::verb::delete_}))
            return;
          auto sku = std::string{path[4]};
          if (!valid_id(id))
            return fail(errc::not_found, "unknown cart");
          if (!path_id_ok(sku, "sku"))
            return;
          return set_item_route(id, sku, verb == http::verb::delete_);
        }
      }
      if (path[1] == "orders" && (n == 3 || n == 4)) {
        auto id = std::string{path[2]};
        auto sub = n == 4 ? path[3] : std::string_view{};
        bool action = sub == "cancel" || sub == "ship" || sub == "deliver" || sub == "return";
        if (n == 3 || sub == "events") {
          route_ = n == 3 ? "/v1/orders/{id}" : "/v1/orders/{id}/events";
          if (!method_is(verb, {http::verb::get}))
            return;
          if (!valid_id(id))
            return fail(errc::not_found, "unknown order");
          return get_order_route(id, n == 4);
        }
        if (action) {
          route_ = sub == "cancel"   ? "/v1/orders/{id}/cancel"
                   : sub == "ship"   ? "/v1/orders/{id}/ship"
                   : sub == "deliver" ? "/v1/orders/{id}/deliver"
                                      : "/v1/orders/{id}/return";
          if (!method_is(verb, {http::verb::post}))
            return;
          if (!valid_id(id))
            return fail(errc::not_found, "unknown order");
          return order_action_route(id, std::string{sub});
        }
      }
      if (path[1] == "reservations" && n == 2) {
        route_ = "/v1/reservations";
        if (method_is(verb, {http::verb::post}))
          reserve();
        return;
      }
      if (path[1] == "reservations" && n == 3) {
        route_ = "/v1/reservations/{id}";
        if (!method_is(verb, {http::verb::get, http::verb::delete_}))
          return;
        auto id = std::string{path[2]};
        if (!valid_id(id))
          return fail(errc::not_found, "unknown reservation");
        return reservation_by_id(id, verb == http::verb::delete_);
      }
    }
    fail(errc::not_found, "no such route");
  }

  // -- WebSocket upgrades ---------------------------------------------------------------

  /// Checks the upgrade and its token (errors are plain HTTP answers), then
  /// hands the socket to websocket.cpp: the storefront if `wh` is empty, else
  /// that warehouse's stock push. A browser cannot set headers on a
  /// WebSocket, so the token may also come as `?access_token=`.
  void upgrade(std::optional<std::string> wh) {
    if (!beast::websocket::is_upgrade(req_))
      return fail(field_error{errc::invalid_field, "Upgrade", "a WebSocket upgrade is required"});
    allow_query_token_ = true;
    std::optional<principal> who;
    if (wh) {
      who = authorize_warehouse(*wh);
      if (!who)
        return;
    } else if (!bearer_token().empty()) {
      who = authenticate();
      if (!who)
        return;
    }
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    http_metrics::observe(route_, method_, 101, secs);
    if (counted_) {
      --srv_->in_flight; // a WebSocket is not an in-flight request
      counted_ = false;
    }
    deadline_.cancel();
    ++generation_;
    if (wh)
      serve_warehouse_ws(stream_.release_socket(), std::move(req_), srv_, bridge_, std::move(*who),
                         std::move(*wh));
    else
      serve_storefront_ws(stream_.release_socket(), std::move(req_), srv_, bridge_, std::move(who));
  }

  // -- handlers ---------------------------------------------------------------------

  template <class T, class Done>
  void ask_entity(const std::string& key, caf::message msg, Done done) {
    ask<T>(srv_->deps.shard_for(key), caf::make_message(route_atom_v, key, std::move(msg)),
           std::move(done));
  }

  template <class T, class Done>
  void ask_pair(const std::string& wh, const std::string& sku, caf::message cmd, Done done) {
    ask_entity<T>("sku:" + sku, caf::make_message(pair_atom_v, wh, std::move(cmd)),
                  std::move(done));
  }

  void readyz() {
    auto self = shared_from_this();
    ask<ok_atom>(caf::actor_cast<caf::actor>(srv_->deps.store), caf::make_message(ping_atom_v),
                 [self](caf::expected<ok_atom> r) {
      if (r)
        self->respond(http::status::ok, {{"status", "ready"}});
      else
        self->fail(errc::unavailable, "PostgreSQL is not reachable");
    });
  }

  void push(const std::string& wh, const std::string& sku) {
    auto p = authorize_warehouse(wh);
    auto body = p ? read_body({"on_hand", "seq", "low_stock_threshold"}) : std::nullopt;
    if (!body)
      return;
    auto& b = *body;
    auto on_hand = b.integer("on_hand", true, 0, INT64_MAX);
    auto seq = b.integer("seq", true, 0, INT64_MAX);
    auto threshold = b.integer("low_stock_threshold", false, 0, INT64_MAX);
    if (b.error)
      return fail(*b.error);
    push_stock_level cmd{*on_hand, *seq, threshold.has_value(), threshold.value_or(0), p->sub,
                         request_id_};
    auto self = shared_from_this();
    ask_pair<stock_result>(wh, sku, caf::make_message(std::move(cmd)),
                           [self](caf::expected<stock_result> r) {
      if (!r)
        return self->fail(r.error());
      auto body = level_json(r->level);
      body["applied"] = r->applied;
      self->respond(http::status::ok, std::move(body));
    });
  }

  void adjust(const std::string& wh, const std::string& sku) {
    auto p = authorize_warehouse(wh);
    auto body = p ? read_body({"delta", "reason"}) : std::nullopt;
    if (!body)
      return;
    auto& b = *body;
    auto delta = b.integer("delta", true, INT64_MIN, INT64_MAX);
    auto reason = b.string("reason", false, false, 200);
    if (!b.error && *delta == 0)
      return fail(field_error{errc::invalid_field, "delta", "delta must not be 0"});
    if (b.error)
      return fail(*b.error);
    auto self = shared_from_this();
    ask_pair<stock_result>(wh, sku,
                           caf::make_message(adjust_stock{*delta, reason.value_or(""), p->sub, request_id_}),
                           [self](caf::expected<stock_result> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(http::status::ok, level_json(r->level));
    });
  }

  void get_pair(const std::string& wh, const std::string& sku) {
    if (!authorize_warehouse(wh))
      return;
    if (auto& view = srv_->deps.stock_view)
      if (auto level = view->find(wh, sku))
        return respond(http::status::ok, level_json(*level));
    auto self = shared_from_this();
    ask_pair<stock_level>(wh, sku, caf::make_message(get_stock_level{}),
                          [self](caf::expected<stock_level> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(http::status::ok, level_json(*r));
    });
  }

  void get_sku(const std::string& sku) {
    auto self = shared_from_this();
    ask_entity<sku_stock>("sku:" + sku, caf::make_message(get_sku_stock{}),
                          [self](caf::expected<sku_stock> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(http::status::ok, sku_stock_json(*r));
    });
  }

  // -- products and carts -------------------------------------------------------------

  void get_product_route(const std::string& sku) {
    if (!authenticate())
      return;
    auto self = shared_from_this();
    ask_entity<product>("product:" + sku, caf::make_message(get_product{}),
                        [self](caf::expected<product> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(http::status::ok, product_json(*r));
    });
  }

  void put_product_route(const std::string& sku) {
    auto p = authorize({"ops"});
    auto body = p ? read_body({"name", "price_minor", "currency", "category"}) : std::nullopt;
    if (!body)
      return;
    auto& b = *body;
    auto name = b.string("name", true, false, 200);
    auto price = b.integer("price_minor", true, 0, INT64_MAX / 1000); // room for line totals
    auto currency = b.string("currency", true, false, 3);
    auto category = b.string("category", false, false, 100);
    if (!b.error && name->empty())
      return fail(field_error{errc::invalid_field, "name", "name must not be empty"});
    if (!b.error && !valid_currency(*currency))
      return fail(field_error{errc::invalid_field, "currency",
                              "currency must be an ISO 4217 code like EUR"});
    if (b.error)
      return fail(*b.error);
    product value{sku, *name, *price, *currency, category.value_or("")};
    auto self = shared_from_this();
    ask_entity<product>("product:" + sku,
                        caf::make_message(put_product{std::move(value), p->sub, request_id_}),
                        [self](caf::expected<product> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(r->version == 1 ? http::status::created : http::status::ok, product_json(*r));
    });
  }

  /// Answers with the cart (as `status`) or the actor's error.
  auto cart_answer(http::status status) {
    return [self = shared_from_this(), status](caf::expected<cart_view> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(status, cart_json(*r));
    };
  }

  void create_cart_route() {
    auto p = authorize({"customer", "ops"});
    if (!p)
      return;
    if (!req_.body().empty() && !read_body({}))
      return;
    auto key = req_["Idempotency-Key"];
    if (key.size() > 255)
      return fail(field_error{errc::invalid_field, "Idempotency-Key", "Idempotency-Key is too long"});
    auto id = key.empty() ? new_id("crt_") : derived_id("crt_", p->sub, key);
    ask_entity<cart_view>("cart:" + id, caf::make_message(create_cart{p->sub, request_id_}),
                          cart_answer(http::status::created));
  }

  void get_cart_route(const std::string& id) {
    auto p = authenticate();
    if (!p)
      return;
    ask_entity<cart_view>("cart:" + id, caf::make_message(get_cart{p->sub, p->is("ops")}),
                          cart_answer(http::status::ok));
  }

  void set_item_route(const std::string& id, const std::string& sku, bool remove) {
    auto p = authenticate();
    if (!p)
      return;
    int64_t quantity = 0;
    if (!remove) {
      auto body = read_body({"quantity"});
      if (!body)
        return;
      auto q = body->integer("quantity", true, 0, INT64_MAX);
      if (body->error)
        return fail(*body->error);
      quantity = *q; // the cart checks its line limit
    }
    ask_entity<cart_view>(
      "cart:" + id,
      caf::make_message(set_cart_item{sku, quantity, p->sub, p->is("ops"), request_id_}),
      cart_answer(http::status::ok));
  }

  caller who(const principal& p) const {
    return caller{p.sub, p.role, p.warehouses, request_id_};
  }

  void checkout_route(const std::string& id) {
    auto p = authorize({"customer", "ops"});
    auto body = p ? read_body({"payment", "shipping"}) : std::nullopt;
    if (!body)
      return;
    auto& b = *body;
    auto payment = b.object("payment", true, {"method", "token"});
    std::optional<std::string> method, token, country;
    if (payment) {
      method = payment->string("method", true, false, 32);
      token = payment->string("token", true, false, 256);
      if (!payment->error && *method != "card")
        payment->error = field_error{errc::invalid_field, "payment.method",
                                     "payment.method must be \"card\""};
      if (!payment->error && token->empty())
        payment->error = field_error{errc::invalid_field, "payment.token",
                                     "payment.token must not be empty"};
      if (payment->error)
        return fail(*payment->error);
    }
    auto shipping = b.object("shipping", true, {});
    if (shipping) {
      if (shipping->fields().size() > 16)
        return fail(field_error{errc::invalid_field, "shipping", "shipping has too many fields"});
      for (auto& kv : shipping->fields())
        if (!kv.value().is_string() || kv.value().as_string().size() > 200)
          return fail(field_error{errc::invalid_field, "shipping." + std::string{kv.key()},
                                  "shipping fields must be strings of at most 200 characters"});
      country = shipping->string("country", true, false, 2);
      if (!shipping->error && !(country->size() == 2 && std::isupper(static_cast<unsigned char>((*country)[0]))
                                && std::isupper(static_cast<unsigned char>((*country)[1]))))
        shipping->error = field_error{errc::invalid_field, "shipping.country",
                                      "shipping.country must be an ISO 3166 code like DE"};
      if (shipping->error)
        return fail(*shipping->error);
    }
    if (b.error)
      return fail(*b.error);
    if (req_["Idempotency-Key"].size() > 255)
      return fail(field_error{errc::invalid_field, "Idempotency-Key", "Idempotency-Key is too long"});
    // A checkout is idempotent by itself: a cart checks out once, and checking
    // a closed cart out again answers the order it made (docs/api.md).
    checkout_cart cmd{"", who(*p), *method, *token,
                      json::serialize(shipping->fields())};
    auto self = shared_from_this();
    ask_entity<order_view>("cart:" + id, caf::make_message(std::move(cmd)),
                           [self](caf::expected<order_view> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(http::status::accepted, {{"order_id", r->order_id}, {"status", r->status}});
    });
  }

  void get_order_route(const std::string& id, bool events) {
    auto p = authenticate();
    if (!p)
      return;
    auto self = shared_from_this();
    if (!events) {
      ask_entity<order_view>("order:" + id, caf::make_message(get_order{who(*p)}),
                             [self](caf::expected<order_view> r) {
        if (!r)
          return self->fail(r.error());
        self->respond(http::status::ok, order_json(*r));
      });
      return;
    }
    ask_entity<std::vector<domain_event>>(
      "order:" + id, caf::make_message(get_order_events{who(*p)}),
      [self, id](caf::expected<std::vector<domain_event>> r) {
        if (!r)
          return self->fail(r.error());
        json::array list;
        for (auto& e : *r)
          list.push_back(event_json(e));
        self->respond(http::status::ok, {{"order_id", id}, {"events", std::move(list)}});
      });
  }

  void order_action_route(const std::string& id, std::string action) {
    auto p = authenticate();
    if (!p)
      return;
    if (!req_.body().empty() && !read_body({}))
      return;
    auto self = shared_from_this();
    ask_entity<order_view>("order:" + id, caf::make_message(order_action{std::move(action), who(*p)}),
                           [self](caf::expected<order_view> r) {
      if (!r)
        return self->fail(r.error());
      self->respond(http::status::ok, order_json(*r));
    });
  }

  void reserve() {
    auto p = authorize({"customer", "ops"});
    auto body = p ? read_body({"sku", "quantity", "warehouse", "ttl_s"}) : std::nullopt;
    if (!body)
      return;
    auto& b = *body;
    auto sku = b.string("sku", true, true);
    auto qty = b.integer("quantity", true, 1, INT64_MAX);
    auto wh = b.string("warehouse", false, true);
    auto ttl = b.integer("ttl_s", false, 1, srv_->cfg.max_hold_ttl_s);
    if (b.error)
      return fail(*b.error);
    auto key = req_["Idempotency-Key"];
    if (key.size() > 255)
      return fail(field_error{errc::invalid_field, "Idempotency-Key", "Idempotency-Key is too long"});
    // With a key, the id is derived from (caller, key): a retry names the same
    // reservation, which the SKU actor then answers as is.
    auto id = key.empty() ? new_id("rsv_") : derived_id("rsv_", p->sub, key);
    auto expires = now_ms() + ttl.value_or(srv_->cfg.default_hold_ttl_s) * 1000;
    auto self = shared_from_this();
    auto created = [self](const reservation& r) {
      self->respond(http::status::created, reservation_json(r));
    };
    if (wh && key.empty()) { // the hot path: straight to the pair
      ask_pair<stock_result>(*wh, *sku,
                             caf::make_message(reserve_stock{id, *qty, expires, p->sub, request_id_}),
                             [self, created, sku = *sku](caf::expected<stock_result> r) {
        if (!r)
          return self->fail(r.error());
        created(reservation{r->hold.reservation_id, sku, {{r->hold.warehouse, r->hold.quantity}},
                            r->hold.expires_at_ms, r->hold.status, r->hold.owner});
      });
      return;
    }
    ask_entity<reservation>("sku:" + *sku,
                            caf::make_message(reserve_any{id, *qty, expires, p->sub, request_id_,
                                                          wh.value_or(""), !key.empty()}),
                            [self, created](caf::expected<reservation> r) {
      if (!r)
        return self->fail(r.error());
      created(*r);
    });
  }

  void reservation_by_id(const std::string& id, bool release) {
    auto p = authorize({"customer", "ops"});
    if (!p)
      return;
    auto self = shared_from_this();
    auto user = p->sub;
    auto corr = request_id_;
    auto is_ops = p->is("ops");
    ask<reservation_rows>(
      caf::actor_cast<caf::actor>(srv_->deps.store), caf::make_message(locate_reservation{id}),
      [self, id, release, user, corr, is_ops](caf::expected<reservation_rows> rows) {
        if (!rows)
          return self->fail(rows.error());
        if (rows->sku.empty())
          return self->fail(errc::not_found, "unknown reservation");
        if (!is_ops && rows->holds.front().owner != user)
          return self->fail(errc::forbidden, "reservation belongs to another customer");
        bool live = false;
        for (auto& h : rows->holds)
          live = live || h.status == "held" || h.status == "committed";
        if (!live) { // released or expired: the rows are final
          if (release)
            return self->fail(errc::not_found, "reservation is no longer held");
          reservation r;
          r.reservation_id = id;
          r.sku = rows->sku;
          r.owner = rows->holds.front().owner;
          for (auto& h : rows->holds) {
            r.allocations.push_back({h.warehouse, h.quantity});
            r.expires_at_ms = h.expires_at_ms;
            r.status = h.status;
          }
          return self->respond(http::status::ok, reservation_json(r));
        }
        auto msg = release ? caf::make_message(release_reservation{id, user, corr})
                           : caf::make_message(get_reservation{id});
        self->ask_entity<reservation>("sku:" + rows->sku, std::move(msg),
                                      [self](caf::expected<reservation> r) {
          if (!r)
            return self->fail(r.error());
          self->respond(http::status::ok, reservation_json(*r));
        });
      });
  }

  beast::tcp_stream stream_;
  net::steady_timer deadline_; ///< for the actor's answer to the current request
  bool deadline_armed_ = false;
  bool waiting_ = false; ///< an actor's answer is due
  std::chrono::steady_clock::time_point waiting_since_;
  uint64_t generation_ = 0; ///< which answer the connection waits for
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  std::shared_ptr<server::impl> srv_;
  caf::actor bridge_;
  std::string request_id_;
  const char* route_ = "unmatched";
  const char* method_ = "OTHER";
  std::chrono::steady_clock::time_point started_;
  bool keep_alive_ = false;
  bool counted_ = false;
  bool allow_query_token_ = false; ///< a WebSocket upgrade: ?access_token= counts
  std::string query_token_;
};

void server::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [self = shared_from_this()](
                                                 beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || self->stopping)
        return;
      log()->warn("event=accept_failed detail=\"{}\"", ec.message());
    } else {
      socket.set_option(tcp::no_delay{true});
      auto& b = self->bridges[self->next_bridge++ % self->bridges.size()];
      std::make_shared<session>(std::move(socket), self, b)->start();
    }
    self->accept();
  });
}

server::server(gateway_config cfg, gateway_deps deps)
  : impl_(std::make_shared<impl>(std::move(cfg), std::move(deps))) {
  if (impl_->deps.feed) // deliveries run on the I/O threads
    impl_->deps.feed->attach(
      [s = impl_.get()](std::function<void()> f) { net::post(s->ioc, std::move(f)); });
}

server::~server() {
  stop(std::chrono::milliseconds{0});
}

caf::expected<uint16_t> server::start() {
  auto& s = *impl_;
  beast::error_code ec;
  auto addr = net::ip::make_address(s.cfg.address, ec);
  if (ec)
    return caf::make_error(errc::invalid_field, "bad listen address " + s.cfg.address);
  tcp::endpoint ep{addr, s.cfg.port};
  s.acceptor.open(ep.protocol(), ec);
  if (!ec)
    s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    s.acceptor.bind(ep, ec);
  if (!ec)
    s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    log()->error("event=listen_failed address={}:{} detail=\"{}\"", s.cfg.address, s.cfg.port,
                 ec.message());
    return caf::make_error(errc::unavailable, "cannot listen: " + ec.message());
  }
  auto bridge_count = std::max<size_t>(2, s.cfg.io_threads);
  for (size_t i = 0; i < bridge_count; ++i)
    s.bridges.push_back(s.deps.sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
      return {[self](bridge_job& job) { job.run(self); }};
    }));
  s.accept();
  for (size_t i = 0; i < s.cfg.io_threads; ++i)
    s.threads.emplace_back([&s] { s.ioc.run(); });
  return s.acceptor.local_endpoint().port();
}

void server::stop(std::chrono::milliseconds grace) {
  auto& s = *impl_;
  if (s.threads.empty())
    return;
  s.stopping = true;
  net::post(s.ioc, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (s.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  s.ioc.stop();
  for (auto& t : s.threads)
    t.join();
  s.threads.clear();
  for (auto& b : s.bridges)
    caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  s.bridges.clear();
}

} // namespace emporium::gateway
