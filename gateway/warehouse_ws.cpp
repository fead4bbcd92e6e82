// The warehouses' stock push WebSocket (`/v1/warehouses/{wh}/ws`, a Beast
// translation unit): each item is a seq-idempotent push, acked once durable.
#include "gateway/ws_common.hpp"

#include <deque>

namespace emporium::gateway {

namespace {

using namespace ws;


/// One warehouse's push connection. Each item is a push_stock_level to its
/// pair; its ack goes out once the pair answered, i.e. once it is durable.
/// At most `ws_max_in_flight` items and answers are outstanding, counted item
/// by item: a batch frame's items wait their turn, and the next frame is read
/// only when they are all out and there is room, so a fast pusher is slowed to
/// the pace of durable writes. The token's `exp` ends the session (close 1008);
/// no item read after it is applied.
class warehouse : public std::enable_shared_from_this<warehouse> {
public:
  warehouse(tcp::socket&& s, std::shared_ptr<server::impl> srv, size_t bridge, principal who,
            std::string wh, std::shared_ptr<void> slot)
    : ws_(std::move(s)), expiry_(ws_.get_executor()), srv_(std::move(srv)), bridge_(bridge),
      who_(std::move(who)), wh_(std::move(wh)), slot_(std::move(slot)) {
  }

  void start(http::request<http::string_body> req) {
    configure(ws_, srv_->cfg, srv_->cfg.body_limit);
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      if (ec)
        return;
      ws_metrics::get().warehouse->Increment();
      self->open_ = true;
      self->expiry_.expires_after(std::chrono::seconds{std::max<int64_t>(0, self->who_.exp - unix_now_s())});
      self->expiry_.async_wait([self](beast::error_code ec) {
        if (!ec)
          self->abort("token expired");
      });
      self->read();
    });
  }

private:
  size_t outstanding() const { return in_flight_ + out_.size() + waiting_.size(); }

  /// Sends waiting batch items while there is room.
  void pump() {
    while (!waiting_.empty() && !closing_ && in_flight_ + out_.size() < srv_->cfg.ws_max_in_flight) {
      auto [v, index] = std::move(waiting_.front());
      waiting_.pop_front();
      item(std::move(v), index);
    }
  }

  /// Reads the next frame once this one's items are all out and there is room.
  void resume() {
    pump();
    if (waiting_.empty() && outstanding() < srv_->cfg.ws_max_in_flight)
      read();
  }

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
      if (unix_now_s() >= self->who_.exp)
        return self->abort("token expired"); // before its timer: nothing read after exp is applied
      self->handle(text);
      if (self->bad_in_a_row_ >= bad_frames_limit)
        return self->abort("too many bad frames");
      self->resume();
    });
  }

  void handle(const std::string& text) {
    auto parsed = read_warehouse_frame(text, srv_->cfg.ws_max_in_flight);
    if (auto* e = std::get_if<field_error>(&parsed))
      return bad(*e, {});
    auto& frame = std::get<warehouse_frame>(parsed);
    if (!frame.batch)
      return item(std::move(frame.items.front()), -1);
    for (size_t i = 0; i < frame.items.size(); ++i)
      waiting_.emplace_back(std::move(frame.items[i]), static_cast<int64_t>(i));
  }

  /// One pushed level; `index` in its batch or -1.
  void item(json::value v, int64_t index) {
    json::object where;
    auto parsed = read_push_item(std::move(v), index, where);
    if (auto* e = std::get_if<field_error>(&parsed))
      return bad(*e, std::move(where));
    auto& p = std::get<push_item>(parsed);
    bad_in_a_row_ = 0;
    ++in_flight_;
    push_stock_level cmd{p.on_hand, p.seq, p.threshold.has_value(), p.threshold.value_or(0),
                         who_.sub, "ws:" + wh_};
    auto key = sku_key(p.sku);
    srv_->ask<stock_result>(
      bridge_, srv_->deps.resolve(key), cluster::routed(key, at_pair<push_stock_level>{wh_, std::move(cmd)}),
      ws_.get_executor(),
      [self = shared_from_this(), sku = p.sku, seq = p.seq](caf::expected<stock_result> r) {
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
        self->resume();
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
      self->resume();
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
    waiting_.clear();
    expiry_.cancel();
    if (open_)
      ws_metrics::get().warehouse->Decrement();
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  ws_stream ws_;
  net::steady_timer expiry_; ///< the token's exp
  beast::flat_buffer in_;
  std::shared_ptr<server::impl> srv_;
  size_t bridge_; ///< index of its bridge actor (server::impl::bridges)
  principal who_;
  std::string wh_;
  std::shared_ptr<void> slot_; ///< of max_connections
  // all on the strand
  std::deque<std::string> out_;
  std::deque<std::pair<json::value, int64_t>> waiting_; ///< a batch's items not yet sent
  size_t in_flight_ = 0;
  int bad_in_a_row_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool closing_ = false;
  bool closed_ = false;
  bool open_ = false;
};
} // namespace

void serve_warehouse_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                        std::shared_ptr<server::impl> srv, size_t bridge, principal who,
                        std::string wh, std::shared_ptr<void> slot) {
  std::make_shared<warehouse>(std::move(socket), std::move(srv), bridge, std::move(who),
                              std::move(wh), std::move(slot))
    ->start(std::move(upgrade));
}


} // namespace emporium::gateway
