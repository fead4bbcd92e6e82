#pragma once

#include "app/config.hpp"

#include <caf/expected.hpp>

#include <memory>

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

  struct parts; ///< node.cpp

private:
  explicit node(std::unique_ptr<parts> p);
  std::unique_ptr<parts> parts_;
};

} // namespace emporium::app
