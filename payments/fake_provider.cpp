// The fake provider's Beast translation unit: a small async HTTP server.
#include "payments/fake_provider.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <iostream>
#include <map>
#include <random>

namespace emporium::payments {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace json = boost::json;
using tcp = net::ip::tcp;

struct authorization {
  std::string order_id;
  int64_t amount_minor = 0;
  std::string currency;
  std::string status; ///< authorized, captured, voided, refunded
  int64_t captured_minor = 0;
  int64_t refunded_minor = 0;
};

/// The provider's books. One I/O thread runs everything: no locks.
struct provider_state {
  fake_provider_config cfg;
  std::mt19937_64 rng{std::random_device{}()};
  std::map<std::string, std::pair<int, std::string>> answered; ///< op+key -> first answer
  std::map<std::string, authorization> auths;
  std::map<std::string, int64_t> calls; ///< by op, answered (not failed) only
  uint64_t next_id = 1;

  bool chance(double p) {
    return p > 0 && std::uniform_real_distribution<double>{0, 1}(rng) < p;
  }

  std::pair<int, std::string> handle(const std::string& op, const json::object& in) {
    auto str = [&](const char* k) {
      auto* v = in.if_contains(k);
      return v && v->is_string() ? std::string{v->as_string()} : std::string{};
    };
    auto num = [&](const char* k) {
      auto* v = in.if_contains(k);
      return v && v->is_int64() ? v->as_int64() : int64_t{-1};
    };
    auto reject = [](std::string why) {
      return std::pair{409, json::serialize(json::object{{"status", "rejected"}, {"error", why}})};
    };
    if (op == "authorize") {
      auto amount = num("amount_minor");
      if (amount < 0 || str("token").empty())
        return std::pair{400, std::string{R"({"status":"rejected","error":"bad request"})"}};
      ++calls[op];
      if (str("token") == "tok_decline" || chance(cfg.decline_rate))
        return std::pair{200, std::string{R"({"status":"declined"})"}};
      auto id = "auth_" + cfg.name + "_" + std::to_string(next_id++);
      auths[id] = authorization{str("order_id"), amount, str("currency"), "authorized"};
      return std::pair{200, json::serialize(json::object{{"authorization_id", id},
                                                         {"status", "authorized"}})};
    }
    auto i = auths.find(str("authorization_id"));
    if (i == auths.end())
      return reject("unknown authorization");
    auto& a = i->second;
    ++calls[op];
    if (op == "capture") {
      if (a.status != "authorized")
        return reject("authorization is " + a.status);
      a.status = "captured";
      a.captured_minor = num("amount_minor");
      return std::pair{200, std::string{R"({"status":"captured"})"}};
    }
    if (op == "void") {
      if (a.status != "authorized")
        return reject("authorization is " + a.status);
      a.status = "voided";
      return std::pair{200, std::string{R"({"status":"voided"})"}};
    }
    if (op == "refund") {
      if (a.status != "captured")
        return reject("authorization is " + a.status);
      a.status = "refunded";
      a.refunded_minor = num("amount_minor");
      return std::pair{200, std::string{R"({"status":"refunded"})"}};
    }
    return std::pair{404, std::string{R"({"error":"no such operation"})"}};
  }

  json::object ledger() const {
    json::array list;
    for (auto& [id, a] : auths)
      list.push_back(json::object{{"authorization_id", id},
                                  {"order_id", a.order_id},
                                  {"amount_minor", a.amount_minor},
                                  {"currency", a.currency},
                                  {"status", a.status},
                                  {"captured_minor", a.captured_minor},
                                  {"refunded_minor", a.refunded_minor}});
    json::object counts;
    for (auto& [op, n] : calls)
      counts[op] = n;
    return {{"authorizations", std::move(list)}, {"calls", std::move(counts)}};
  }

  void configure(const json::object& in) {
    if (auto* v = in.if_contains("latency_ms"); v && v->is_number())
      cfg.latency_ms = v->to_number<int64_t>();
    if (auto* v = in.if_contains("decline_rate"); v && v->is_number())
      cfg.decline_rate = v->to_number<double>();
    if (auto* v = in.if_contains("failure_rate"); v && v->is_number())
      cfg.failure_rate = v->to_number<double>();
  }
};

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket s, provider_state& st) : stream_(std::move(s)), timer_(stream_.get_executor()), st_(st) {
  }

  void read() {
    req_ = {};
    stream_.expires_after(std::chrono::seconds{30});
    http::async_read(stream_, buffer_, req_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec)
        self->on_request();
    });
  }

private:
  void on_request() {
    auto target = std::string{req_.target()};
    json::error_code ec;
    auto body = json::parse(req_.body().empty() ? std::string{"{}"} : req_.body(), ec);
    if (ec || !body.is_object())
      return answer(400, R"({"error":"body is not a JSON object"})");
    auto& in = body.as_object();
    if (target == "/admin/config" && req_.method() == http::verb::post) {
      st_.configure(in);
      return answer(200, R"({"status":"ok"})");
    }
    if (target == "/admin/ledger")
      return answer(200, json::serialize(st_.ledger()));
    if (req_.method() != http::verb::post || target.size() < 2)
      return answer(404, R"({"error":"no such route"})");
    auto op = target.substr(1);
    auto key = std::string{req_["Idempotency-Key"]};
    auto respond = [self = shared_from_this(), op, key, in] {
      auto& st = self->st_;
      if (st.chance(st.cfg.failure_rate))
        return self->answer(503, R"({"error":"provider unavailable"})");
      auto memo = op + "\x1f" + key;
      if (auto i = st.answered.find(memo); !key.empty() && i != st.answered.end())
        return self->answer(i->second.first, i->second.second);
      auto out = st.handle(op, in);
      if (!key.empty() && out.first < 500)
        st.answered[memo] = out;
      self->answer(out.first, out.second);
    };
    if (st_.cfg.latency_ms <= 0)
      return respond();
    timer_.expires_after(std::chrono::milliseconds{st_.cfg.latency_ms});
    timer_.async_wait([respond](beast::error_code ec) {
      if (!ec)
        respond();
    });
  }

  void answer(int status, std::string body) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<http::status>(status));
    res_.set(http::field::content_type, "application/json");
    res_.keep_alive(req_.keep_alive());
    res_.body() = std::move(body);
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec && self->res_.keep_alive())
        self->read();
    });
  }

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  provider_state& st_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

void accept(tcp::acceptor& acceptor, provider_state& st) {
  acceptor.async_accept([&acceptor, &st](beast::error_code ec, tcp::socket s) {
    if (ec)
      return;
    std::make_shared<session>(std::move(s), st)->read();
    accept(acceptor, st);
  });
}

} // namespace

int run_fake_provider(const fake_provider_config& cfg) {
  net::io_context ioc{1};
  provider_state st;
  st.cfg = cfg;
  beast::error_code ec;
  tcp::endpoint ep{net::ip::make_address(cfg.address, ec), cfg.port};
  if (ec) {
    std::cerr << "fake provider: bad address " << cfg.address << "\n";
    return 2;
  }
  tcp::acceptor acceptor{ioc};
  acceptor.open(ep.protocol(), ec);
  if (!ec)
    acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    acceptor.bind(ep, ec);
  if (!ec)
    acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "fake provider: cannot listen on " << cfg.address << ":" << cfg.port << ": "
              << ec.message() << "\n";
    return 1;
  }
  net::signal_set signals{ioc, SIGINT, SIGTERM};
  signals.async_wait([&ioc](beast::error_code, int) { ioc.stop(); });
  accept(acceptor, st);
  std::cout << "fake provider " << cfg.name << " on http://" << cfg.address << ":"
            << acceptor.local_endpoint().port() << std::endl;
  ioc.run();
  return 0;
}

} // namespace emporium::payments
