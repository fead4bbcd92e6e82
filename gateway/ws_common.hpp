// Shared by the two WebSocket sessions (storefront_ws.cpp, warehouse_ws.cpp):
// the stream type, their metrics and how a stream is configured. Not part of
// the folder's interface.
#pragma once

#include "gateway/internal.hpp"

#include <boost/beast/websocket.hpp>

namespace emporium::gateway::ws {

namespace websocket = beast::websocket;
using ws_stream = websocket::stream<beast::tcp_stream>;

/// Bad frames in a row before the connection counts as abuse and is closed.
constexpr int bad_frames_limit = 20;

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

inline void configure(ws_stream& ws, const gateway_config& cfg, size_t frame_limit) {
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

} // namespace emporium::gateway::ws
