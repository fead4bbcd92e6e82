// One HTTP connection (a Beast translation unit): read a request, match it
// against the route table, admit the caller, run the route's handler, write
// the answer, repeat while keep-alive. Handlers see it as an `exchange`.
#include "gateway/auth.hpp"
#include "gateway/handlers.hpp"
#include "gateway/internal.hpp"

#include <boost/beast/websocket/rfc6455.hpp>

#include <map>
#include <tuple>

namespace emporium::gateway {

namespace {

method method_of(http::verb v) {
  switch (v) {
    case http::verb::get: return method::get;
    case http::verb::put: return method::put;
    case http::verb::post: return method::post;
    case http::verb::delete_: return method::delete_;
    default: return method::other;
  }
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


/// One HTTP connection.
class http_session : public exchange, public std::enable_shared_from_this<http_session> {
public:
  http_session(tcp::socket&& socket, std::shared_ptr<server::impl> srv, size_t bridge,
               std::shared_ptr<void> slot)
    : stream_(std::move(socket)), deadline_(stream_.get_executor()), srv_(std::move(srv)),
      bridge_(bridge), slot_(std::move(slot)) {
    beast::error_code ec;
    auto ep = stream_.socket().remote_endpoint(ec);
    if (!ec)
      peer_ = ep.address().to_string();
  }

  ~http_session() override { end_wait(); }

  void start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&http_session::do_read, shared_from_this()));
  }

  // -- exchange ---------------------------------------------------------------------

  std::string_view body() const override { return req_.body(); }
  std::string_view header(std::string_view name) const override {
    auto i = req_.find(beast::string_view{name.data(), name.size()});
    return i == req_.end() ? std::string_view{} : std::string_view{i->value().data(), i->value().size()};
  }
  const gateway_config& config() const override { return srv_->cfg; }
  caf::actor resolve(const protocols::entity_key& key) override { return srv_->deps.resolve(key); }
  caf::actor health() override { return caf::actor_cast<caf::actor>(srv_->deps.health); }
  const cluster::stock_view* stock_view() const override { return srv_->deps.stock_view.get(); }
  const cluster::shard_table* shards() const override { return srv_->deps.shards.get(); }
  caf::actor membership() override { return srv_->deps.membership; }
  std::string_view target() const override {
    return {req_.target().data(), req_.target().size()};
  }

  void upgrade_storefront() override {
    if (!srv_->deps.feed)
      return fail(errc::not_found, "no such route");
    if (!upgrade_checked())
      return;
    serve_storefront_ws(stream_.release_socket(), std::move(req_), srv_, bridge_, std::move(caller_),
                        std::move(slot_));
  }

  void upgrade_warehouse(std::string warehouse) override {
    if (!upgrade_checked())
      return;
    serve_warehouse_ws(stream_.release_socket(), std::move(req_), srv_, bridge_, std::move(*caller_),
                       std::move(warehouse), std::move(slot_));
  }

private:
  ticket begin_wait() override {
    auto gen = ++generation_;
    waiting_since_ = std::chrono::steady_clock::now();
    waiting_ = true;
    if (!wait_counted_) {
      ++srv_->waiting;
      wait_counted_ = true;
    }
    if (!deadline_armed_ && !writing_)
      arm_deadline(srv_->cfg.actor_timeout);
    return {shared_from_this(), gen};
  }

  void run_in_bridge(std::function<void(caf::event_based_actor*)> job) override {
    srv_->run_in_bridge(bridge_, std::move(job));
  }

  void complete(const ticket& t, std::function<void(exchange&)> f) override {
    net::post(stream_.get_executor(), [keep = t.keep, gen = t.generation, f = std::move(f)] {
      auto& self = static_cast<http_session&>(*keep);
      if (gen != self.generation_)
        return; // answered already (deadline)
      self.waiting_ = false;
      self.end_wait();
      f(self);
    });
  }

  // -- reading and writing ------------------------------------------------------------

  void do_read() {
    parser_.emplace();
    parser_->body_limit(srv_->cfg.body_limit);
    parser_->header_limit(static_cast<uint32_t>(srv_->cfg.header_limit));
    stream_.expires_after(srv_->cfg.request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout
        || ec == net::error::operation_aborted)
      return close();
    route_ = "unmatched";
    method_ = "OTHER";
    allow_.clear();
    match_ = {};
    caller_.reset();
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

  /// The deadline timer is armed at most once per period, not per request:
  /// when it fires it checks how long the current wait has lasted.
  void arm_deadline(std::chrono::steady_clock::duration d) {
    deadline_armed_ = true;
    deadline_.expires_after(d);
    deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
      self->deadline_armed_ = false;
      if (ec || !self->waiting_ || self->writing_)
        return;
      auto waited = std::chrono::steady_clock::now() - self->waiting_since_;
      if (waited >= self->srv_->cfg.actor_timeout)
        self->fail(errc::unavailable, "no answer in time, retry later");
      else
        self->arm_deadline(self->srv_->cfg.actor_timeout - waited);
    });
  }

  void respond(unsigned status, json::object body) override {
    respond(static_cast<http::status>(status), std::move(body), 0);
  }

  void end_wait() {
    if (wait_counted_) {
      --srv_->waiting;
      wait_counted_ = false;
    }
  }

  void respond(http::status status, json::object body, unsigned retry_after) {
    ++generation_; // whatever is still on its way for this request is dropped
    waiting_ = false;
    end_wait();
    res_ = {};
    res_.version(req_.version() == 10 ? 10 : 11);
    res_.result(status);
    res_.set(http::field::server, "emporium");
    res_.set(http::field::content_type, "application/json");
    res_.set("X-Request-Id", request_id_);
    if (retry_after > 0)
      res_.set(http::field::retry_after, std::to_string(retry_after));
    if (!allow_.empty())
      res_.set(http::field::allow, allow_);
    res_.keep_alive(keep_alive_);
    res_.body() = json::serialize(body);
    send(static_cast<unsigned>(status));
  }

  void respond_text(unsigned status, std::string body, const char* content_type) override {
    ++generation_;
    waiting_ = false;
    end_wait();
    res_ = {};
    res_.version(11);
    res_.result(static_cast<http::status>(status));
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
                      beast::bind_front_handler(&http_session::on_write, shared_from_this()));
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

  /// A write whose outcome is not known: no answer would be true, so none is
  /// given; the connection closes as it would if the node had died.
  void abandon() {
    ++generation_;
    waiting_ = false;
    end_wait();
    if (counted_) {
      --srv_->in_flight;
      counted_ = false;
    }
    http_metrics::observe(route_, method_, 0,
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    log()->error("event=answer_lost request_id={} route={} detail=\"outcome unknown, connection "
                 "closed unanswered\"", request_id_, route_);
    close();
  }

  void close() {
    deadline_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  void fail(const error_reply& r) override {
    if (r.code == errc::outcome_unknown && writing_)
      return abandon();
    if (r.code == errc::method_not_allowed && !match_.allow.empty())
      allow_ = match_.allow;
    respond(static_cast<http::status>(r.status), r.body, r.retry_after);
  }
  using exchange::fail;


  // -- routing ----------------------------------------------------------------------

  void dispatch() {
    auto verb = method_of(req_.method());
    method_ = method_name(verb);
    writing_ = req_.method() != http::verb::get && req_.method() != http::verb::head;
    match_ = match_route(route_table(), verb, req_.target());
    if (!match_.pattern.empty())
      route_ = match_.pattern.data(); // a literal of the route table
    if (match_.found == nullptr) {
      if (match_.error == errc::invalid_field)
        return fail(field_error{errc::invalid_field, match_.field, match_.message});
      return fail(match_.error, match_.message);
    }
    auto& r = *match_.found;
    std::string_view authorization = req_[http::field::authorization];
    std::string from_query;
    // A browser cannot set headers on a WebSocket: there the token may come
    // as ?access_token= (WebSocket routes are the ones ending in /ws).
    if (authorization.empty() && r.pattern.size() > 3 && r.pattern.substr(r.pattern.size() - 3) == "/ws") {
      from_query = query_bearer(req_.target());
      authorization = from_query;
    }
    auto now = unix_now_s();
    auto admitted = admit(r.rule, authorization, match_.param("warehouse"), srv_->cfg.jwt_secret, now);
    if (r.pattern.rfind("/v1/", 0) == 0 && !within_limits(r, admitted, authorization, now))
      return;
    if (!admitted)
      return fail(admitted.error());
    caller_ = std::move(*admitted);
    r.run(*this);
  }

  /// The contract's limits on a /v1 route, in order: the node's in-flight cap
  /// (503), then the caller's token bucket (429): a customer's by `sub`, else
  /// the client address's (also for a token refused by auth: a guesser is
  /// limited like anyone without one); warehouse and ops are not limited.
  /// False: answered already.
  bool within_limits(const route& r, const caf::expected<std::optional<principal>>& admitted,
                     std::string_view authorization, int64_t now) {
    auto& m = limit_metrics::get();
    if (static_cast<size_t>(srv_->waiting.load(std::memory_order_relaxed)) >= srv_->cfg.max_inflight) {
      m.shed_inflight->Increment();
      fail(errc::unavailable, "over capacity, retry later");
      return false;
    }
    std::optional<principal> caller;
    if (admitted && *admitted)
      caller = **admitted;
    else if (admitted && r.rule == access::anyone && !authorization.empty())
      caller = bearer_principal(authorization, srv_->cfg.jwt_secret, now); // the token names the client
    if (caller && (caller->is("warehouse") || caller->is("ops")))
      return true;
    bool customer = caller && caller->is("customer");
    auto& limiter = customer ? srv_->customer_limit : srv_->public_limit;
    if (!limiter.on())
      return true;
    auto a = customer ? limiter.take(caller->sub, std::chrono::steady_clock::now())
                      : limiter.take(client_address(peer_, req_["X-Forwarded-For"], srv_->cfg.trusted_proxies),
                                     std::chrono::steady_clock::now());
    if (a.v == rate_limiter::verdict::allowed)
      return true;
    if (a.v == rate_limiter::verdict::full) {
      m.shed_clients->Increment();
      fail(errc::unavailable, "too many clients, retry later");
      return false;
    }
    (customer ? m.limited_customer : m.limited_public)->Increment();
    auto limited = to_reply(errc::rate_limited, "too many requests, retry after "
                                                  + std::to_string(a.retry_after_s) + " s");
    limited.retry_after = a.retry_after_s;
    fail(limited);
    return false;
  }

  /// Whether this is a WebSocket upgrade; if so the connection stops being an
  /// HTTP request (metrics, in-flight count, deadline); if not, 400.
  bool upgrade_checked() {
    if (!beast::websocket::is_upgrade(req_)) {
      fail(field_error{errc::invalid_field, "Upgrade", "a WebSocket upgrade is required"});
      return false;
    }
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    http_metrics::observe(route_, method_, 101, secs);
    if (counted_) {
      --srv_->in_flight; // a WebSocket is not an in-flight request
      counted_ = false;
    }
    deadline_.cancel();
    ++generation_;
    return true;
  }

  beast::tcp_stream stream_;
  net::steady_timer deadline_; ///< for the actor's answer to the current request
  bool deadline_armed_ = false;
  /// The current request may write: it waits for the definite outcome, never
  /// for actor_timeout (a 503 there could be a write that commits later).
  /// Every write path ends in a bounded answer: the store's start deadline,
  /// statement_timeout, its breaker, the router's deadline across nodes.
  bool writing_ = false;
  bool waiting_ = false; ///< an actor's answer is due
  std::chrono::steady_clock::time_point waiting_since_;
  uint64_t generation_ = 0; ///< which answer the connection waits for
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  std::shared_ptr<server::impl> srv_;
  size_t bridge_; ///< index of its bridge actor (server::impl::bridges)
  const char* route_ = "unmatched";
  const char* method_ = "OTHER";
  std::string allow_; ///< the Allow header of a 405
  std::chrono::steady_clock::time_point started_;
  bool keep_alive_ = false;
  bool counted_ = false;
  bool wait_counted_ = false;   ///< this request is one of srv_->waiting
  std::shared_ptr<void> slot_; ///< of max_connections
  std::string peer_;           ///< the remote address
};

} // namespace

void serve_http(tcp::socket socket, std::shared_ptr<server::impl> srv, size_t bridge,
                std::shared_ptr<void> slot) {
  std::make_shared<http_session>(std::move(socket), std::move(srv), bridge, std::move(slot))
    ->start();
}

} // namespace emporium::gateway
