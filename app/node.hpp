#pragma once

#include "app/config.hpp"
#include "protocols/entity.hpp"

#include <caf/expected.hpp>

#include <memory>

namespace emporium::cluster {
struct transport_config;
}

namespace emporium::app {

/// One running node: starts its components in order (migrations, the
/// embedded broker if asked, the actor system, the store, entities, payment
/// adapter, outbox relay, gateway) and stops them in reverse.
class node {
public:
  /// Starts everything, or stops what was started and says why.
  static caf::expected<std::unique_ptr<node>> start(const node_config& cfg);

  ~node();

  /// Stop accepting, finish in-flight requests, then stop entities, relay,
  /// payments and store. Idempotent.
  void stop();

  /// The bound HTTP port.
  uint16_t port() const noexcept;

  /// Hands every shard to the other nodes (SIGTERM, or the drain route);
  /// has_left() turns true once done.
  void drain();
  bool has_left() const noexcept;

  struct parts; ///< node.cpp

private:
  explicit node(std::unique_ptr<parts> p);
  /// Publishes the endpoint on the cluster port and starts the coordinator.
  caf::expected<void> join_cluster(const node_config& c, const cluster::transport_config& t,
                                   const protocols::entity_resolver& resolve);
  std::unique_ptr<parts> parts_;
};

} // namespace emporium::app
