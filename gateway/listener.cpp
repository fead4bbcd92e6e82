// The listener (a Beast translation unit): binds, accepts connections onto
// their own strands, runs the I/O threads and the bridge actors, and stops
// in order (no new connections, in-flight requests finish, then the threads).
#include "gateway/internal.hpp"

namespace emporium::gateway {

void server::impl::accept() {
  acceptor.async_accept(net::make_strand(ioc), [self = shared_from_this()](
                                                 beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == net::error::operation_aborted || self->stopping)
        return;
      log()->warn("event=accept_failed detail=\"{}\"", ec.message());
    } else {
      socket.set_option(tcp::no_delay{true});
      auto& b = self->bridges[self->next_bridge++ % self->bridges.size()];
      serve_http(std::move(socket), self, b);
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
  auto bridge_count = std::max<size_t>(2, s.cfg.io_threads);
  for (size_t i = 0; i < bridge_count; ++i)
    s.bridges.push_back(s.deps.sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
      return {[self](bridge_job& job) { job.run(self); }};
    }));
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
  for (auto& b : s.bridges)
    caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  s.bridges.clear();
}

} // namespace emporium::gateway
