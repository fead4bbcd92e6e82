// Baseline (b) of `make bench`: the barest Boost.Beast keep-alive server
// (answers {"status":"ok"}), to show what the gateway costs on top.
// Usage: hello_server [PORT] [IO_THREADS] — give it the node's I/O thread count.
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class session : public std::enable_shared_from_this<session> {
public:
  explicit session(tcp::socket s) : stream_(std::move(s)) {
  }
  void read() {
    req_ = {};
    http::async_read(stream_, buf_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec)
        return;
      self->res_ = {http::status::ok, self->req_.version()};
      self->res_.set(http::field::content_type, "application/json");
      self->res_.keep_alive(self->req_.keep_alive());
      self->res_.body() = R"({"status":"ok"})";
      self->res_.prepare_payload();
      http::async_write(self->stream_, self->res_, [self](beast::error_code ec, size_t) {
        if (!ec)
          self->read();
      });
    });
  }

private:
  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

void accept(tcp::acceptor& a) {
  a.async_accept([&a](beast::error_code ec, tcp::socket s) {
    if (!ec) {
      s.set_option(tcp::no_delay{true});
      std::make_shared<session>(std::move(s))->read();
    }
    accept(a);
  });
}

int main(int argc, char** argv) {
  int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1;
  net::io_context ioc{threads};
  tcp::acceptor a{ioc, {net::ip::make_address("127.0.0.1"),
                        static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 18099)}};
  accept(a); // each session has one operation outstanding at a time: no strand needed
  std::vector<std::thread> extra;
  for (int i = 1; i < threads; ++i)
    extra.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (auto& t : extra)
    t.join();
}
