#pragma once

#include <caf/expected.hpp>

#include <memory>
#include <string>

struct rd_kafka_s;

namespace emporium::persistence {

/// librdkafka's mock cluster, started inside the process for development and
/// tests: an in-memory Kafka-protocol broker on loopback (not durable). Real
/// clusters are reached with the same client code by giving bootstrap servers.
class embedded_kafka {
public:
  static caf::expected<std::unique_ptr<embedded_kafka>> start(int brokers = 1);
  ~embedded_kafka();

  /// Bootstrap servers of the mock cluster, e.g. "127.0.0.1:39027".
  const std::string& bootstrap_servers() const noexcept { return bootstrap_; }

private:
  embedded_kafka() = default;
  ::rd_kafka_s* handle_ = nullptr;
  std::string bootstrap_;
};

} // namespace emporium::persistence
