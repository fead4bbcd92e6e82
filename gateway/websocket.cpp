// The gateway's WebSockets (its second Beast translation unit): the
// storefront's live stock and order status (`/v1/ws`) and the warehouses'
// stock push (`/v1/warehouses/{wh}/ws`). docs/api.md has the frames.
#include "gateway/internal.hpp"

#include <boost/beast/websocket.hpp>

#include <deque>
#include <mutex>
#include <set>

namespace emporium::gateway {

namespace {

namespace websocket = beast::websocket;
using ws_stream = websocket::stream<beast::tcp_stream>;

/// A storefront client sends small control frames only.
constexpr size_t storefront_frame_limit = 4096;
/// Bad frames in a row before the connection counts as abuse and is closed.
constexpr int bad_frames_limit = 20;
/// Frames other than topic updates (errors) waiting for a slow reader.
constexpr size_t control_queue_limit = 64;

struct ws_metrics {
  prometheus::Gauge* storefront;
  prometheus::Gauge* warehouse;
  prometheus::Gauge* pending;    ///< topic frames waiting to be written, all connections
  prometheus::Counter* sent;
  prometheus::Counter* coalesced;
  prometheus::Counter* bad_frames;
  prometheus::Family<prometheus::Counter>* items;

  static ws_metrics& get() {
    static ws_metrics instance = [] {
      auto& reg = metrics::registry();
      auto& conns = prometheus::BuildGauge()
                      .Name("emporium_ws_connections")
                      .Help("Open WebSockets by kind")
                      .Register(reg);
      auto counter = [&reg](const char* name, const char* help) {
        return &prometheus::BuildCounter().Name(name).Help(help).Register(reg).Add({});
      };
      ws_metrics m;
      m.storefront = &conns.Add({{"kind", "storefront"}});
      m.warehouse = &conns.Add({{"kind", "warehouse"}});
      m.pending = &prometheus::BuildGauge()
                     .Name("emporium_ws_pending_frames")
                     .Help("Storefront frames waiting for a slow reader (at most one per "
                           "subscription)")
                     .Register(reg)
                     .Add({});
      m.sent = counter("emporium_ws_frames_sent_total", "Storefront frames written");
      m.coalesced = counter("emporium_ws_frames_coalesced_total",
                            "Storefront frames replaced by a newer one before a slow reader "
                            "took them");
      m.bad_frames = counter("emporium_ws_bad_frames_total",
                             "Client frames answered with an error frame");
      m.items = &prometheus::BuildCounter()
                   .Name("emporium_ws_pushed_items_total")
                   .Help("Warehouse push items by outcome (applied, stale, error)")
                   .Register(reg);
      return m;
    }();
    return instance;
  }
};

void configure(ws_stream& ws, const gateway_config& cfg, size_t frame_limit) {
  websocket::stream_base::timeout t;
  t.handshake_timeout = std::chrono::seconds{10};
  t.idle_timeout = cfg.ws_idle_timeout;
  t.keep_alive_pings = true; // a ping at half the idle time; no answer by the end closes
  ws.set_option(t);
  ws.set_option(websocket::stream_base::decorator(
    [](websocket::response_type& res) { res.set(http::field::server, "emporium"); }));
  ws.read_message_max(frame_limit);
  // A fixed send buffer: a client that stops reading holds at most this much
  // kernel memory, and the frames behind it coalesce in the connection.
  beast::error_code ignored;
  beast::get_lowest_layer(ws).socket().set_option(net::socket_base::send_buffer_size(64 << 10),
                                                  ignored);
}

// -- storefront ---------------------------------------------------------------------------

/// One storefront connection. Reads run on its strand; topic frames arrive
/// from the live feed on any thread and are kept latest-per-key: at most one
/// frame per subscription waits, however slowly the client reads.
class storefront : public cluster::live_feed::subscriber,
                   public std::enable_shared_from_this<storefront> {
public:
  storefront(tcp::socket&& s, std::shared_ptr<server::impl> srv, caf::actor bridge,
             std::optional<principal> who)
    : ws_(std::move(s)), srv_(std::move(srv)), bridge_(std::move(bridge)), who_(std::move(who)) {
  }

  void start(http::request<http::string_body> req) {
    configure(ws_, srv_->cfg, storefront_frame_limit);
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      if (ec)
        return;
      ws_metrics::get().storefront->Increment();
      {
        std::lock_guard guard{self->mtx_};
        self->open_ = true;
        self->kick();
      }
      self->read();
    });
  }

  void offer(const std::string& key, std::shared_ptr<const std::string> frame) override {
    std::lock_guard guard{mtx_};
    if (closed_)
      return;
    auto [i, fresh] = latest_.try_emplace(key, frame);
    if (fresh) {
      dirty_.push_back(key);
      ws_metrics::get().pending->Increment();
    } else {
      i->second = std::move(frame);
      ws_metrics::get().coalesced->Increment();
    }
    kick();
  }

private:
  void read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec)
        return self->shut();
      auto text = beast::buffers_to_string(self->in_.data());
      self->in_.consume(self->in_.size());
      self->handle(text);
      if (self->bad_in_a_row_ >= bad_frames_limit)
        return self->abort("too many bad frames");
      self->read();
    });
  }

  void handle(const std::string& text) {
    auto parsed = body_reader::parse(text, {"op", "topic", "sku", "order_id"});
    if (auto* e = std::get_if<field_error>(&parsed))
      return bad(*e);
    auto& b = std::get<body_reader>(parsed);
    auto op = b.string("op", true, false, 16);
    auto topic = b.string("topic", true, false, 16);
    if (b.error)
      return bad(*b.error);
    if (*op != "subscribe" && *op != "unsubscribe")
      return bad({errc::invalid_field, "op", "op must be subscribe or unsubscribe"});
    bool on = *op == "subscribe";
    if (*topic == "stock") {
      auto sku = b.string("sku", true, true);
      if (!b.error && b.fields().contains("order_id"))
        return bad({errc::invalid_field, "order_id", "unknown field for topic stock"});
      if (b.error)
        return bad(*b.error);
      bad_in_a_row_ = 0;
      return on ? subscribe_stock(*sku) : unsubscribe_stock(*sku);
    }
    if (*topic == "order") {
      auto id = b.string("order_id", true, true);
      if (!b.error && b.fields().contains("sku"))
        return bad({errc::invalid_field, "sku", "unknown field for topic order"});
      if (b.error)
        return bad(*b.error);
      bad_in_a_row_ = 0;
      return on ? subscribe_order(*id) : unsubscribe_order(*id);
    }
    bad({errc::invalid_field, "topic", "topic must be stock or order"});
  }

  void bad(const field_error& e) {
    ++bad_in_a_row_;
    ws_metrics::get().bad_frames->Increment();
    if (e.code == errc::bad_json)
      return control(error_frame(to_reply(errc::bad_json, "a frame must be a JSON object")));
    control(error_frame(to_reply(e)));
  }

  bool room_for_one_more() {
    if (stock_.size() + orders_.size() < srv_->cfg.ws_max_subscriptions)
      return true;
    control(error_frame(to_reply(errc::rate_limited,
                                 "at most " + std::to_string(srv_->cfg.ws_max_subscriptions)
                                   + " subscriptions per connection")));
    return false;
  }

  void subscribe_stock(const std::string& sku) {
    if (stock_.count(sku) > 0 || !room_for_one_more())
      return;
    stock_.insert(sku);
    auto& feed = *srv_->deps.feed;
    if (!feed.subscribe_stock(sku, shared_from_this()))
      return; // the current frame is on its way
    auto key = sku_key(sku);
    srv_->ask<sku_stock>(bridge_, srv_->deps.resolve(key), cluster::routed(key, get_sku_stock{}),
                         ws_.get_executor(),
                         [self = shared_from_this(), sku](caf::expected<sku_stock> r) {
      if (r)
        return self->srv_->deps.feed->seed_stock(*r);
      if (to_errc(r.error()) == errc::not_found) // not stocked yet: 0 until it is
        return self->srv_->deps.feed->seed_stock(sku_stock{sku, 0, {}});
      self->refused(true, sku, r.error());
    });
  }

  /// The subscription as error frames name it.
  static json::object topic_of(bool stock, const std::string& id) {
    if (stock)
      return {{"topic", "stock"}, {"sku", id}};
    return {{"topic", "order"}, {"order_id", id}};
  }

  /// An actor refused a subscription (or could not answer): say so, forget it.
  void refused(bool stock, const std::string& id, const caf::error& err) {
    control(error_frame(to_reply(err), topic_of(stock, id)));
    if (stock)
      unsubscribe_stock(id);
    else
      unsubscribe_order(id);
  }

  void unsubscribe_stock(const std::string& sku) {
    if (stock_.erase(sku) > 0)
      srv_->deps.feed->unsubscribe_stock(sku, this);
  }

  /// Owner (or ops) only: the order actor decides, as for GET /v1/orders/{id}.
  void subscribe_order(const std::string& id) {
    if (!who_)
      return control(error_frame(to_reply(errc::unauthenticated, "the order topic needs a token"),
                                 topic_of(false, id)));
    if (orders_.count(id) > 0 || !room_for_one_more())
      return;
    orders_.insert(id); // counts against the limit while the answer is out
    ask_order(id, [self = shared_from_this(), id](order_view&) {
      if (self->closed_ || self->orders_.count(id) == 0)
        return; // gone, or unsubscribed, while the answer was out
      auto& feed = *self->srv_->deps.feed;
      if (!feed.subscribe_order(id, self))
        return;
      // Asked again after subscribing, so no change falls in between.
      self->ask_order(id, [self, id](order_view& v) { self->srv_->deps.feed->seed_order(v); });
    });
  }

  template <class Then>
  void ask_order(const std::string& id, Then then) {
    auto key = order_key(id);
    caller c{who_->sub, who_->role, who_->warehouses, ""};
    srv_->ask<order_view>(bridge_, srv_->deps.resolve(key), cluster::routed(key, get_order{c}),
                          ws_.get_executor(),
                          [self = shared_from_this(), id, then](caf::expected<order_view> r) mutable {
      if (r)
        return then(*r);
      self->refused(false, id, r.error());
    });
  }

  void unsubscribe_order(const std::string& id) {
    if (orders_.erase(id) > 0)
      srv_->deps.feed->unsubscribe_order(id, this);
  }

  /// Queues a frame that is not a topic update (an error); a client that
  /// lets too many pile up is closed.
  void control(std::string frame) {
    std::lock_guard guard{mtx_};
    if (closed_)
      return;
    if (control_.size() >= control_queue_limit) {
      net::post(ws_.get_executor(), [self = shared_from_this()] { self->abort("not reading"); });
      return;
    }
    control_.push_back(std::make_shared<const std::string>(std::move(frame)));
    kick();
  }

  /// Under mtx_: starts the writer unless it runs.
  void kick() {
    if (writing_ || !open_)
      return;
    writing_ = true;
    net::post(ws_.get_executor(), [self = shared_from_this()] { self->write_next(); });
  }

  void write_next() {
    {
      std::lock_guard guard{mtx_};
      if (closed_)
        return;
      current_.reset();
      if (!control_.empty()) {
        current_ = std::move(control_.front());
        control_.pop_front();
      } else if (!dirty_.empty()) {
        auto i = latest_.find(dirty_.front());
        current_ = std::move(i->second);
        latest_.erase(i);
        dirty_.pop_front();
        ws_metrics::get().pending->Decrement();
      } else {
        writing_ = false;
        return;
      }
    }
    ws_.text(true);
    ws_.async_write(net::buffer(*current_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec)
        return self->shut();
      ws_metrics::get().sent->Increment();
      self->write_next();
    });
  }

  void abort(const char* why) {
    if (closing_)
      return;
    closing_ = true;
    log()->info("event=ws_closed kind=storefront reason=\"{}\"", why);
    ws_.async_close(websocket::close_reason{websocket::close_code::policy_error, why},
                    [self = shared_from_this()](beast::error_code) { self->shut(); });
  }

  /// The connection is over: leave every topic, drop what waits.
  void shut() {
    {
      std::lock_guard guard{mtx_};
      if (closed_)
        return;
      closed_ = true;
      ws_metrics::get().pending->Decrement(static_cast<double>(dirty_.size()));
      dirty_.clear();
      latest_.clear();
      control_.clear();
    }
    if (open_)
      ws_metrics::get().storefront->Decrement();
    for (auto& sku : stock_)
      srv_->deps.feed->unsubscribe_stock(sku, this);
    for (auto& id : orders_)
      srv_->deps.feed->unsubscribe_order(id, this);
    stock_.clear();
    orders_.clear();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  ws_stream ws_;
  beast::flat_buffer in_;
  std::shared_ptr<server::impl> srv_;
  caf::actor bridge_;
  std::optional<principal> who_;
  // strand only (closed_ is written only on the strand too)
  std::set<std::string> stock_;
  std::set<std::string> orders_;
  int bad_in_a_row_ = 0;
  bool closing_ = false;
  std::shared_ptr<const std::string> current_; ///< being written
  // shared with offer()
  std::mutex mtx_;
  std::deque<std::string> dirty_; ///< keys with a waiting frame, oldest first
  std::unordered_map<std::string, std::shared_ptr<const std::string>> latest_;
  std::deque<std::shared_ptr<const std::string>> control_;
  bool writing_ = false;
  bool closed_ = false;
  bool open_ = false;
};

// -- warehouse stock push -----------------------------------------------------------------

/// One warehouse's push connection. Each item is a push_stock_level to its
/// pair; its ack goes out once the pair answered, i.e. once it is durable.
/// Reading pauses while `ws_max_in_flight` items and answers are outstanding,
/// so a fast pusher is slowed to the pace of durable writes.
class warehouse : public std::enable_shared_from_this<warehouse> {
public:
  warehouse(tcp::socket&& s, std::shared_ptr<server::impl> srv, caf::actor bridge, principal who,
            std::string wh)
    : ws_(std::move(s)), srv_(std::move(srv)), bridge_(std::move(bridge)), who_(std::move(who)),
      wh_(std::move(wh)) {
  }

  void start(http::request<http::string_body> req) {
    configure(ws_, srv_->cfg, srv_->cfg.body_limit);
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      if (ec)
        return;
      ws_metrics::get().warehouse->Increment();
      self->open_ = true;
      self->read();
    });
  }

private:
  size_t outstanding() const { return in_flight_ + out_.size(); }

  void read() {
    if (reading_ || closing_ || closed_)
      return;
    reading_ = true;
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->reading_ = false;
      if (ec)
        return self->shut();
      auto text = beast::buffers_to_string(self->in_.data());
      self->in_.consume(self->in_.size());
      self->handle(text);
      if (self->bad_in_a_row_ >= bad_frames_limit)
        return self->abort("too many bad frames");
      if (self->outstanding() < self->srv_->cfg.ws_max_in_flight)
        self->read();
    });
  }

  void handle(const std::string& text) {
    auto parsed = parse_json(text);
    if (auto* e = std::get_if<field_error>(&parsed))
      return bad(*e, {});
    auto& v = std::get<json::value>(parsed);
    if (v.is_object() && v.as_object().contains("batch")) {
      auto& o = v.as_object();
      if (o.size() != 1)
        return bad({errc::invalid_field, "", "a batch frame has only \"batch\""}, {});
      if (!o["batch"].is_array())
        return bad({errc::invalid_field, "batch", "batch must be an array"}, {});
      auto& items = o["batch"].as_array();
      for (size_t i = 0; i < items.size(); ++i)
        item(std::move(items[i]), static_cast<int64_t>(i));
      return;
    }
    item(std::move(v), -1);
  }

  /// One {"sku","on_hand","seq"[,"low_stock_threshold"]}; `index` in its batch or -1.
  void item(json::value v, int64_t index) {
    json::object where;
    if (index >= 0)
      where["index"] = index;
    if (v.is_object()) { // name the item in errors as far as it can be named
      if (auto* s = v.as_object().if_contains("sku"); s && s->is_string())
        where["sku"] = *s;
      if (auto* s = v.as_object().if_contains("seq"); s && s->is_int64())
        where["seq"] = *s;
    }
    auto parsed = body_reader::read(std::move(v), {"sku", "on_hand", "seq", "low_stock_threshold"});
    if (auto* e = std::get_if<field_error>(&parsed))
      return bad(*e, std::move(where));
    auto& b = std::get<body_reader>(parsed);
    auto sku = b.string("sku", true, true);
    auto on_hand = b.integer("on_hand", true, 0, INT64_MAX);
    auto seq = b.integer("seq", true, 0, INT64_MAX);
    auto threshold = b.integer("low_stock_threshold", false, 0, INT64_MAX);
    if (b.error)
      return bad(*b.error, std::move(where));
    bad_in_a_row_ = 0;
    ++in_flight_;
    push_stock_level cmd{*on_hand, *seq, threshold.has_value(), threshold.value_or(0), who_.sub,
                         "ws:" + wh_};
    auto key = sku_key(*sku);
    srv_->ask<stock_result>(
      bridge_, srv_->deps.resolve(key), cluster::routed(key, at_pair<push_stock_level>{wh_, std::move(cmd)}),
      ws_.get_executor(),
      [self = shared_from_this(), sku = *sku, seq = *seq](caf::expected<stock_result> r) {
        --self->in_flight_;
        auto& items = *ws_metrics::get().items;
        if (r) {
          items.Add({{"outcome", r->applied ? "applied" : "stale"}}).Increment();
          self->send(json::serialize(
            json::object{{"ack", seq}, {"applied", r->applied}, {"sku", sku}}));
        } else {
          items.Add({{"outcome", "error"}}).Increment();
          self->send(error_frame(to_reply(r.error()), {{"sku", sku}, {"seq", seq}}));
        }
        if (self->outstanding() < self->srv_->cfg.ws_max_in_flight)
          self->read();
      });
  }

  void bad(const field_error& e, json::object where) {
    ++bad_in_a_row_;
    ws_metrics::get().bad_frames->Increment();
    ws_metrics::get().items->Add({{"outcome", "error"}}).Increment();
    send(error_frame(to_reply(e), std::move(where)));
  }

  void send(std::string frame) {
    if (closed_)
      return;
    out_.push_back(std::move(frame));
    if (!writing_)
      write_next();
  }

  void write_next() {
    if (out_.empty() || closed_) {
      writing_ = false;
      return;
    }
    writing_ = true;
    ws_.text(true);
    ws_.async_write(net::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec,
                                                                           size_t) {
      if (ec)
        return self->shut();
      self->out_.pop_front();
      self->write_next();
      if (self->outstanding() < self->srv_->cfg.ws_max_in_flight)
        self->read();
    });
  }

  void abort(const char* why) {
    if (closing_)
      return;
    closing_ = true;
    log()->info("event=ws_closed kind=warehouse warehouse={} reason=\"{}\"", wh_, why);
    ws_.async_close(websocket::close_reason{websocket::close_code::policy_error, why},
                    [self = shared_from_this()](beast::error_code) { self->shut(); });
  }

  void shut() {
    if (closed_)
      return;
    closed_ = true;
    out_.clear();
    if (open_)
      ws_metrics::get().warehouse->Decrement();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  ws_stream ws_;
  beast::flat_buffer in_;
  std::shared_ptr<server::impl> srv_;
  caf::actor bridge_;
  principal who_;
  std::string wh_;
  // all on the strand
  std::deque<std::string> out_;
  size_t in_flight_ = 0;
  int bad_in_a_row_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool open_ = false;
};

} // namespace

void serve_storefront_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                         std::shared_ptr<server::impl> srv, caf::actor bridge,
                         std::optional<principal> who) {
  std::make_shared<storefront>(std::move(socket), std::move(srv), std::move(bridge), std::move(who))
    ->start(std::move(upgrade));
}

void serve_warehouse_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                        std::shared_ptr<server::impl> srv, caf::actor bridge, principal who,
                        std::string wh) {
  std::make_shared<warehouse>(std::move(socket), std::move(srv), std::move(bridge), std::move(who),
                              std::move(wh))
    ->start(std::move(upgrade));
}

} // namespace emporium::gateway
