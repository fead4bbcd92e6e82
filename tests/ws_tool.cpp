// ws_tool: a Boost.Beast WebSocket client for the end-to-end tests and the
// benchmark.
//
//   ws_tool client --port P --path /v1/ws [--token T]
//       prints "open" (or "refused STATUS BODY" when the upgrade is answered
//       with HTTP), then sends each stdin line as a text frame ("close" closes)
//       and prints each frame received as a line; "closed CODE" at the end.
//   ws_tool fanout --port P --sku S --wh W --token T --subscribers N --changes K
//                  [--stalled M]
//       N storefront connections subscribe to S (M more subscribe and never
//       read, with a tiny receive buffer). Then K times: PUT a new on_hand for
//       (W, S) over HTTP and wait until every reading subscriber has seen it.
//       Prints JSON: delivered, p50/p99/max ms from the PUT being sent to each
//       subscriber's frame.
//   ws_tool push --port P --wh W --token T --items N --batch B --skus K [--prefix X]
//       pushes N items (seq 1..N, spread over K SKUs) in batch frames, at most
//       8 frames ahead of the acks; prints JSON: items, acked, applied, errors,
//       seconds, items_per_s.
#include "tests/support/tool_flags.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace json = boost::json;
using tcp = net::ip::tcp;
using clock_type = std::chrono::steady_clock;

namespace {

/// Connects and upgrades synchronously; `rcvbuf` > 0 shrinks the receive buffer.
std::unique_ptr<websocket::stream<tcp::socket>> open_ws(net::io_context& ioc, int port,
                                                        const std::string& path,
                                                        const std::string& token,
                                                        int rcvbuf = 0) {
  auto ws = std::make_unique<websocket::stream<tcp::socket>>(ioc);
  auto& sock = ws->next_layer();
  sock.open(tcp::v4());
  if (rcvbuf > 0)
    sock.set_option(net::socket_base::receive_buffer_size(rcvbuf));
  sock.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  if (!token.empty())
    ws->set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
      req.set(http::field::authorization, "Bearer " + token);
    }));
  ws->handshake("127.0.0.1", path);
  return ws;
}

int client(std::map<std::string, std::string> f) {
  net::io_context ioc;
  std::unique_ptr<websocket::stream<tcp::socket>> ws;
  try {
    websocket::response_type res;
    ws = std::make_unique<websocket::stream<tcp::socket>>(ioc);
    ws->next_layer().connect({net::ip::make_address("127.0.0.1"),
                              static_cast<unsigned short>(std::stoi(f["--port"]))});
    auto token = f["--token"];
    if (!token.empty())
      ws->set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
        req.set(http::field::authorization, "Bearer " + token);
      }));
    beast::error_code ec;
    ws->handshake(res, "127.0.0.1", f["--path"], ec);
    if (ec) {
      std::string body = res.body();
      std::replace(body.begin(), body.end(), '\n', ' ');
      std::cout << "refused " << res.result_int() << " " << body << std::endl;
      return 0;
    }
  } catch (const std::exception& e) {
    std::cout << "failed " << e.what() << std::endl;
    return 1;
  }
  std::cout << "open" << std::endl;
  std::deque<std::string> out;
  bool writing = false;
  beast::flat_buffer in;
  std::function<void()> read = [&] {
    ws->async_read(in, [&](beast::error_code ec, size_t) {
      if (ec) {
        std::cout << "closed " << ws->reason().code << std::endl;
        return;
      }
      std::cout << beast::buffers_to_string(in.data()) << std::endl;
      in.consume(in.size());
      read();
    });
  };
  std::function<void()> write = [&] {
    if (out.empty()) {
      writing = false;
      return;
    }
    writing = true;
    if (out.front() == "close") {
      ws->async_close(websocket::close_code::normal, [&](beast::error_code) { out.clear(); });
      return;
    }
    ws->text(true);
    ws->async_write(net::buffer(out.front()), [&](beast::error_code ec, size_t) {
      if (ec)
        return;
      out.pop_front();
      write();
    });
  };
  read();
  auto guard = net::make_work_guard(ioc);
  std::thread io{[&] { ioc.run(); }};
  for (std::string line; std::getline(std::cin, line);) {
    net::post(ioc, [&, line] {
      out.push_back(line);
      if (!writing)
        write();
    });
  }
  guard.reset();
  net::post(ioc, [&] {
    beast::error_code ignored;
    ws->next_layer().close(ignored);
  });
  io.join();
  return 0;
}

/// A synchronous HTTP PUT of a JSON body; returns the status.
unsigned put(tcp::socket& sock, const std::string& target, const std::string& token,
             const std::string& body) {
  http::request<http::string_body> req{http::verb::put, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::authorization, "Bearer " + token);
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(sock, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(sock, buf, res);
  return res.result_int();
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  return xs[std::min(xs.size() - 1, static_cast<size_t>(p * static_cast<double>(xs.size())))];
}

int fanout(std::map<std::string, std::string> f) {
  int port = std::stoi(f["--port"]);
  auto sku = f["--sku"];
  auto wh = f["--wh"];
  auto token = f["--token"];
  int n = std::stoi(f["--subscribers"]);
  int changes = std::stoi(f["--changes"]);
  int stalled = f.count("--stalled") ? std::stoi(f["--stalled"]) : 0;
  auto subscribe = R"({"op":"subscribe","topic":"stock","sku":")" + sku + "\"}";
  net::io_context ioc;

  // The stalled ones: subscribe, then never read.
  std::vector<std::unique_ptr<websocket::stream<tcp::socket>>> idle;
  for (int i = 0; i < stalled; ++i) {
    idle.push_back(open_ws(ioc, port, "/v1/ws", "", 2048));
    idle.back()->write(net::buffer(subscribe));
  }

  struct sub {
    std::unique_ptr<websocket::stream<tcp::socket>> ws;
    beast::flat_buffer in;
    int64_t seen = -1; ///< latest on_hand seen for `wh`
    bool first = true;
  };
  std::vector<std::unique_ptr<sub>> subs;
  std::mutex mtx;
  std::condition_variable cv;
  int64_t target = -1;
  int reached = 0;
  clock_type::time_point sent_at;
  std::vector<double> latencies;
  int initial = 0;
  for (int i = 0; i < n; ++i) {
    subs.push_back(std::make_unique<sub>());
    subs.back()->ws = open_ws(ioc, port, "/v1/ws", "");
    subs.back()->ws->write(net::buffer(subscribe));
  }
  std::function<void(sub*)> read = [&](sub* s) {
    s->ws->async_read(s->in, [&, s](beast::error_code ec, size_t) {
      if (ec)
        return;
      auto v = json::parse(beast::buffers_to_string(s->in.data()));
      s->in.consume(s->in.size());
      int64_t on_hand = -1;
      if (v.as_object().contains("warehouses"))
        for (auto& w : v.at("warehouses").as_array())
          if (w.at("warehouse").as_string() == wh)
            on_hand = w.at("on_hand").as_int64();
      {
        std::lock_guard guard{mtx};
        if (s->first)
          ++initial;
        s->first = false;
        s->seen = on_hand;
        if (target >= 0 && on_hand == target) {
          latencies.push_back(
            std::chrono::duration<double, std::milli>(clock_type::now() - sent_at).count());
          ++reached;
        }
      }
      cv.notify_all();
      read(s);
    });
  };
  for (auto& s : subs)
    read(s.get());
  std::thread io{[&] { ioc.run(); }};
  {
    std::unique_lock lock{mtx};
    cv.wait_for(lock, std::chrono::seconds{30}, [&] { return initial == n; });
  }
  tcp::socket http_sock{ioc};
  http_sock.connect({net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  auto base = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  int delivered = 0;
  for (int k = 1; k <= changes; ++k) {
    {
      std::lock_guard guard{mtx};
      target = 100000 + k;
      reached = 0;
      sent_at = clock_type::now();
    }
    auto status = put(http_sock, "/v1/warehouses/" + wh + "/stock/" + sku, token,
                      "{\"on_hand\":" + std::to_string(100000 + k)
                        + ",\"seq\":" + std::to_string(base * 1000 + k) + "}");
    if (status != 200) {
      std::cerr << "ws_tool: PUT answered " << status << "\n";
      break;
    }
    std::unique_lock lock{mtx};
    cv.wait_for(lock, std::chrono::seconds{10}, [&] { return reached == n; });
    delivered += reached;
  }
  json::object out{{"subscribers", n},
                   {"stalled", stalled},
                   {"changes", changes},
                   {"delivered", delivered},
                   {"initial", initial},
                   {"p50_ms", percentile(latencies, 0.5)},
                   {"p99_ms", percentile(latencies, 0.99)},
                   {"max_ms", percentile(latencies, 1.0)}};
  std::cout << json::serialize(out) << std::endl;
  ioc.stop();
  io.join();
  return 0;
}

int push(std::map<std::string, std::string> f) {
  int port = std::stoi(f["--port"]);
  auto wh = f["--wh"];
  int items = std::stoi(f["--items"]);
  int batch = std::stoi(f["--batch"]);
  int skus = std::stoi(f["--skus"]);
  auto prefix = f.count("--prefix") ? f["--prefix"] : std::string{"PUSH"};
  net::io_context ioc;
  auto ws = open_ws(ioc, port, "/v1/warehouses/" + wh + "/ws", f["--token"]);
  int acked = 0, applied = 0, errors = 0, sent = 0, frames_out = 0;
  beast::flat_buffer in;
  auto start = clock_type::now();
  auto send_frame = [&] {
    json::array b;
    for (int i = 0; i < batch && sent < items; ++i, ++sent)
      b.push_back(json::object{{"sku", prefix + std::to_string(sent % skus)},
                               {"on_hand", sent},
                               {"seq", sent + 1}});
    ws->write(net::buffer(json::serialize(json::object{{"batch", std::move(b)}})));
    ++frames_out;
  };
  int answered = 0;
  while (answered < items) {
    // Keep up to 8 frames ahead of the answers.
    while (sent < items && (sent - answered) < 8 * batch)
      send_frame();
    ws->read(in);
    auto v = json::parse(beast::buffers_to_string(in.data()));
    in.consume(in.size());
    ++answered;
    if (v.as_object().contains("ack")) {
      ++acked;
      applied += v.at("applied").as_bool() ? 1 : 0;
    } else {
      ++errors;
      if (errors <= 3)
        std::cerr << "ws_tool: " << json::serialize(v) << "\n";
    }
  }
  auto secs = std::chrono::duration<double>(clock_type::now() - start).count();
  json::object out{{"items", items},   {"acked", acked},          {"applied", applied},
                   {"errors", errors}, {"frames", frames_out},    {"seconds", secs},
                   {"items_per_s", static_cast<double>(items) / secs}};
  std::cout << json::serialize(out) << std::endl;
  ws->close(websocket::close_code::normal);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  try {
    if (cmd == "client")
      return client(emporium::test::tool_flags(argc, argv));
    if (cmd == "fanout")
      return fanout(emporium::test::tool_flags(argc, argv));
    if (cmd == "push")
      return push(emporium::test::tool_flags(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "ws_tool: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: ws_tool client|fanout|push ... (see the source's header)\n";
  return 2;
}
