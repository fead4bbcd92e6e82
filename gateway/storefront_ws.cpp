// The storefront WebSocket (`/v1/ws`, a Beast translation unit): live stock
// and order status through the node's live feed. docs/api.md has the frames.
#include "gateway/ws_common.hpp"

#include <deque>
#include <mutex>
#include <set>

namespace emporium::gateway {

namespace {

using namespace ws;

/// A storefront client sends small control frames only.
constexpr size_t storefront_frame_limit = 4096;
/// Frames other than topic updates (errors) waiting for a slow reader.
constexpr size_t control_queue_limit = 64;


/// One storefront connection. Reads run on its strand; topic frames arrive
/// from the live feed on any thread and are kept latest-per-key: at most one
/// frame per subscription waits, however slowly the client reads. A session
/// opened with a token ends when the token expires (close 1008).
class storefront : public cluster::live_feed::subscriber,
                   public std::enable_shared_from_this<storefront> {
public:
  storefront(tcp::socket&& s, std::shared_ptr<server::impl> srv, size_t bridge,
             std::optional<principal> who, std::shared_ptr<void> slot)
    : ws_(std::move(s)), expiry_(ws_.get_executor()), srv_(std::move(srv)), bridge_(bridge),
      who_(std::move(who)), slot_(std::move(slot)) {
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
      if (self->who_) {
        self->expiry_.expires_after(std::chrono::seconds{std::max<int64_t>(0, self->who_->exp - unix_now_s())});
        self->expiry_.async_wait([self](beast::error_code ec) {
          if (!ec)
            self->abort("token expired");
        });
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
      if (self->who_ && unix_now_s() >= self->who_->exp)
        return self->abort("token expired"); // before its timer: nothing read after exp is done
      self->handle(text);
      if (self->bad_in_a_row_ >= bad_frames_limit)
        return self->abort("too many bad frames");
      self->read();
    });
  }

  void handle(const std::string& text) {
    auto parsed = read_storefront_frame(text);
    if (auto* e = std::get_if<field_error>(&parsed))
      return bad(*e);
    auto& sub = std::get<subscription>(parsed);
    bad_in_a_row_ = 0;
    if (sub.stock)
      return sub.subscribe ? subscribe_stock(sub.id) : unsubscribe_stock(sub.id);
    sub.subscribe ? subscribe_order(sub.id) : unsubscribe_order(sub.id);
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
    expiry_.cancel();
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
  net::steady_timer expiry_; ///< the token's exp, if a token came
  beast::flat_buffer in_;
  std::shared_ptr<server::impl> srv_;
  size_t bridge_; ///< index of its bridge actor (server::impl::bridges)
  std::optional<principal> who_;
  std::shared_ptr<void> slot_; ///< of max_connections
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

} // namespace

void serve_storefront_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                         std::shared_ptr<server::impl> srv, size_t bridge,
                         std::optional<principal> who, std::shared_ptr<void> slot) {
  std::make_shared<storefront>(std::move(socket), std::move(srv), bridge, std::move(who),
                               std::move(slot))
    ->start(std::move(upgrade));
}

} // namespace emporium::gateway
