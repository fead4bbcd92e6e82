// The warehouses' stock push WebSocket (`/v1/warehouses/{wh}/ws`, a Beast
// translation unit): each item is a seq-idempotent push, acked once durable.
#include "gateway/ws_common.hpp"

#include <deque>

namespace emporium::gateway {

namespace {

using namespace ws;


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

void serve_warehouse_ws(tcp::socket socket, http::request<http::string_body> upgrade,
                        std::shared_ptr<server::impl> srv, caf::actor bridge, principal who,
                        std::string wh) {
  std::make_shared<warehouse>(std::move(socket), std::move(srv), std::move(bridge), std::move(who),
                              std::move(wh))
    ->start(std::move(upgrade));
}


} // namespace emporium::gateway
