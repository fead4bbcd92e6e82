// The listener (a Beast translation unit): binds, accepts connections onto
// their own strands, runs the I/O threads and the bridge actors, and stops
// in order (no new connections, in-flight requests finish, then the threads).
#include "gateway/internal.hpp"

namespace emporium::gateway {

namespace {

/// A connection over max_connections: one 503 and closed, nothing read.
void shed_connection(tcp::socket socket) {
  static const std::string body
    = R"({"error":"unavailable","message":"too many connections, retry later"})";
  static const std::string response = "HTTP/1.1 503 Service Unavailable\r\nServer: emporium\r\n"
                                      "Content-Type: application/json\r\nRetry-After: 1\r\n"
                                      "Connection: close\r\nContent-Length: "
                                      + std::to_string(body.size()) + "\r\n\r\n" + body;
  limit_metrics::get().shed_connections->Increment();
  auto s = std::make_shared<tcp::socket>(std::move(socket));
  net::async_write(*s, net::buffer(response), [s](beast::error_code, size_t) {
    beast::error_code ignored;
    s->shutdown(tcp::socket::shutdown_both, ignored);
    s->close(ignored);
  });
}

} // namespace

limit_metrics& limit_metrics::get() {
  static limit_metrics instance = [] {
    auto& limited = prometheus::BuildCounter()
                      .Name("emporium_rate_limited_total")
                      .Help("requests answered 429 by the per-client token buckets, by class")
                      .Register(metrics::registry());
    auto& shed = prometheus::BuildCounter()
                   .Name("emporium_shed_total")
                   .Help("requests and connections refused with 503 over a limit, by reason")
                   .Register(metrics::registry());
    return limit_metrics{&limited.Add({{"class", "public"}}), &limited.Add({{"class", "customer"}}),
                         &shed.Add({{"reason", "inflight"}}), &shed.Add({{"reason", "connections"}}),
                         &shed.Add({{"reason", "clients"}})};
  }();
  return instance;
}

void server::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [self = shared_from_this()](
                                                 beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || self->stopping)
        return;
      log()->warn("event=accept_failed detail=\"{}\"", ec.message());
    } else {
      socket.set_option(tcp::no_delay{true});
      if (static_cast<size_t>(self->connections.load()) >= self->cfg.max_connections) {
        shed_connection(std::move(socket));
      } else {
        serve_http(std::move(socket), self, self->pick_bridge(), self->connection_slot());
      }
    }
    self->accept();
  });
}

server::server(gateway_config cfg, gateway_deps deps)
  : impl_(std::make_shared<impl>(std::move(cfg), std::move(deps))) {
  if (impl_->deps.feed) // deliveries run on the I/O threads
    impl_->deps.feed->attach(
      [s = impl_.get()](std::function<void()> f) { net::post(s->ioc, std::move(f)); });
}

server::~server() {
  stop(std::chrono::milliseconds{0});
}

caf::expected<uint16_t> server::start() {
  auto& s = *impl_;
  beast::error_code ec;
  auto addr = net::ip::make_address(s.cfg.address, ec);
  if (ec)
    return caf::make_error(errc::invalid_field, "bad listen address " + s.cfg.address);
  tcp::endpoint ep{addr, s.cfg.port};
  s.acceptor.open(ep.protocol(), ec);
  if (!ec)
    s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec)
    s.acceptor.bind(ep, ec);
  if (!ec)
    s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    log()->error("event=listen_failed address={}:{} detail=\"{}\"", s.cfg.address, s.cfg.port,
                 ec.message());
    return caf::make_error(errc::unavailable, "cannot listen: " + ec.message());
  }
  // Supervised: a crashed bridge is started again in its slot; what it held
  // is answered at once (answer_once: unavailable, or outcome unknown).
  s.bridges = std::make_unique<protocols::actor_group>(
    s.deps.sys, "gateway_bridge", std::max<size_t>(2, s.cfg.io_threads),
    [](caf::actor_system& sys, size_t) {
      return sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
        return {
          [self](bridge_job& job) { job.run(self); },
          [self](crash_atom) { self->quit(caf::exit_reason::kill); }, // the failure hook
        };
      });
    });
  s.accept();
  for (size_t i = 0; i < s.cfg.io_threads; ++i)
    s.threads.emplace_back([&s] { s.ioc.run(); });
  return s.acceptor.local_endpoint().port();
}

void server::stop(std::chrono::milliseconds grace) {
  auto& s = *impl_;
  if (s.threads.empty())
    return;
  s.stopping = true;
  net::post(s.ioc, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
  });
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (s.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  s.ioc.stop();
  for (auto& t : s.threads)
    t.join();
  s.threads.clear();
  s.bridges->stop();
}

void server::crash_bridge(size_t i) {
  if (impl_->bridges)
    caf::anon_send((*impl_->bridges)[i % impl_->bridges->size()], crash_atom_v);
}

} // namespace emporium::gateway
