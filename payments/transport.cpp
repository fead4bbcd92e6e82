// The payment adapter's Beast translation unit: an async HTTP/1.1 client.
#include "payments/transport.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <thread>

namespace emporium::payments {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

/// http://host[:port][/prefix] split into its parts; empty host: not a URL.
struct base_url {
  std::string host;
  std::string port = "80";
  std::string prefix;

  static base_url parse(std::string_view url) {
    base_url out;
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme)
      return out;
    url.remove_prefix(scheme.size());
    auto slash = url.find('/');
    auto authority = url.substr(0, slash);
    if (slash != std::string_view::npos)
      out.prefix = std::string{url.substr(slash)};
    while (!out.prefix.empty() && out.prefix.back() == '/')
      out.prefix.pop_back();
    auto colon = authority.rfind(':');
    out.host = std::string{authority.substr(0, colon)};
    if (colon != std::string_view::npos)
      out.port = std::string{authority.substr(colon + 1)};
    return out;
  }
};

/// One call: resolve, connect, write, read; `done` exactly once.
class call : public std::enable_shared_from_this<call> {
public:
  call(net::io_context& ioc, base_url url, std::string target, std::string key, std::string body,
       std::chrono::milliseconds timeout, std::function<void(http_reply)> done)
    : resolver_(ioc), stream_(ioc), url_(std::move(url)), timeout_(timeout),
      done_(std::move(done)) {
    req_.method(http::verb::post);
    req_.target(std::move(target));
    req_.version(11);
    req_.set(http::field::host, url_.host);
    req_.set(http::field::content_type, "application/json");
    req_.set("Idempotency-Key", key);
    req_.body() = std::move(body);
    req_.prepare_payload();
  }

  void start() {
    stream_.expires_after(timeout_);
    resolver_.async_resolve(url_.host, url_.port,
                            [self = shared_from_this()](beast::error_code ec,
                                                        tcp::resolver::results_type r) {
      if (ec)
        return self->finish(ec);
      self->stream_.async_connect(r, [self](beast::error_code ec, const tcp::endpoint&) {
        if (ec)
          return self->finish(ec);
        http::async_write(self->stream_, self->req_, [self](beast::error_code ec, size_t) {
          if (ec)
            return self->finish(ec);
          http::async_read(self->stream_, self->buffer_, self->res_,
                           [self](beast::error_code ec, size_t) { self->finish(ec); });
        });
      });
    });
  }

private:
  void finish(beast::error_code ec) {
    http_reply out;
    if (ec) {
      out.error = ec.message();
    } else {
      out.status = static_cast<int>(res_.result_int());
      out.body = std::move(res_.body());
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    done_(std::move(out));
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  base_url url_;
  std::chrono::milliseconds timeout_;
  std::function<void(http_reply)> done_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  beast::flat_buffer buffer_;
};

class http_transport : public transport {
public:
  explicit http_transport(std::chrono::milliseconds timeout)
    : timeout_(timeout), work_(net::make_work_guard(ioc_)), thread_([this] { ioc_.run(); }) {
  }

  ~http_transport() override {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }

  void post(const std::string& base, const std::string& op, const std::string& key,
            std::string body, std::function<void(http_reply)> done) override {
    auto url = base_url::parse(base);
    if (url.host.empty())
      return done(http_reply{0, {}, "not an http:// URL: " + base});
    auto target = url.prefix + "/" + op;
    auto c = std::make_shared<call>(ioc_, std::move(url), std::move(target), key,
                                    std::move(body), timeout_, std::move(done));
    net::post(ioc_, [c] { c->start(); });
  }

private:
  std::chrono::milliseconds timeout_;
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  std::thread thread_;
};

} // namespace

std::shared_ptr<transport> make_http_transport(std::chrono::milliseconds timeout) {
  return std::make_shared<http_transport>(timeout);
}

} // namespace emporium::payments
