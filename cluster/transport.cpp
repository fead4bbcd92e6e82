#include "cluster/transport.hpp"

#include "protocols/errc.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/function_view.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/all.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace emporium::cluster {

caf::error configure_transport(caf::actor_system_config& cfg, const transport_config& t) {
  cfg.load<caf::io::middleman>();
  cfg.set("middleman.heartbeat-interval", caf::timespan{t.heartbeat});
  cfg.set("middleman.connection-timeout", caf::timespan{t.connection_timeout});
  if (!t.tls())
    return {};
  for (auto* file : {&t.cert, &t.key, &t.ca})
    if (!std::ifstream{*file}.good())
      return caf::make_error(errc::invalid_field, std::string{"cannot read "} + *file);
  cfg.load<caf::openssl::manager>(); // after the middleman, or CAF aborts
  cfg.set("openssl.certificate", t.cert);
  cfg.set("openssl.key", t.key);
  cfg.set("openssl.cafile", t.ca);
  return {};
}

caf::expected<uint16_t> publish_endpoint(caf::actor_system& sys, const caf::actor& endpoint,
                                         const std::string& host, uint16_t port,
                                         const transport_config& t) {
  if (t.tls())
    return caf::openssl::publish(endpoint, port, host.c_str(), true);
  return sys.middleman().publish(endpoint, port, host.c_str(), true);
}

bool port_open(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    return false;
  }
  int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  bool open = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0;
  if (!open && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t err_len = sizeof(err);
    open = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1
           && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) == 0 && err == 0;
  }
  ::close(fd);
  return open;
}

peer_connector make_connector(caf::actor_system& sys, const transport_config& t) {
  return [&sys, t](const std::string& host, uint16_t port) -> caf::expected<caf::actor> {
    // remote_actor would wait forever on a silent peer: ask the middleman
    // (or the OpenSSL manager) with a deadline instead.
    const auto& mm = t.tls() ? sys.openssl_manager().actor_handle() : sys.middleman().actor_handle();
    auto f = caf::make_function_view(mm, caf::duration{t.connect_timeout});
    auto r = f(caf::connect_atom::value, host, port);
    if (!r)
      return r.error();
    auto& ptr = std::get<1>(*r);
    if (!ptr)
      return caf::make_error(errc::unavailable, std::string{"peer published no actor"});
    return caf::actor_cast<caf::actor>(std::move(ptr));
  };
}

} // namespace emporium::cluster
