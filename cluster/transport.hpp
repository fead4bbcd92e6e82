#pragma once

#include "cluster/coordinator.hpp"

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <string>

/// Node-to-node transport: CAF's middleman (BASP over TCP), with Debian's
/// libcaf_openssl for mutual TLS 1.3 when a certificate, key and CA are set.
namespace emporium::cluster {

struct transport_config {
  std::string cert, key, ca; ///< all three: mutual TLS; none: plain (loopback only)
  /// BASP heartbeats: a peer silent for `connection_timeout` (SIGSTOP, a
  /// partition) is dropped, which ends the remote asks waiting on it.
  std::chrono::milliseconds heartbeat{250};
  std::chrono::milliseconds connection_timeout{2000};
  std::chrono::seconds connect_timeout{2};
  bool tls() const noexcept { return !cert.empty(); }
};

/// Loads the middleman (and the OpenSSL manager) into the system config,
/// before the system is created. Fails when a TLS file is unreadable
/// (CAF would abort at the first connection instead).
caf::error configure_transport(caf::actor_system_config& cfg, const transport_config& t);

/// Publishes the router's endpoint at host:port (port 0: any free one);
/// answers the bound port.
caf::expected<uint16_t> publish_endpoint(caf::actor_system& sys, const caf::actor& endpoint,
                                         const std::string& host, uint16_t port,
                                         const transport_config& t);

/// Whether a TCP connection to host:port opens within `timeout` (closed at once).
bool port_open(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);

/// Connects to a peer's published endpoint, bounded by connect_timeout.
peer_connector make_connector(caf::actor_system& sys, const transport_config& t);

} // namespace emporium::cluster
