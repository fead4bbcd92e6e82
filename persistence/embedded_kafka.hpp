#pragma once

#include <caf/expected.hpp>

#include <memory>
#include <string>

struct rd_kafka_s;
struct rd_kafka_conf_s;

namespace emporium::persistence {

/// librdkafka's mock cluster, started inside the process for development and
/// tests: an in-memory Kafka-protocol broker on loopback (not durable). Real
/// clusters are reached with the same client code by giving bootstrap servers.
class embedded_kafka {
public:
  /// Starts `brokers` brokers and creates the contract's topics (inventory,
  /// orders, carts, analytics) with `partitions` partitions each.
  static caf::expected<std::unique_ptr<embedded_kafka>> start(int brokers = 1,
                                                               int partitions = 4);
  ~embedded_kafka();

  /// Bootstrap servers of the mock cluster, e.g. "127.0.0.1:39027".
  const std::string& bootstrap_servers() const noexcept { return bootstrap_; }

  /// Takes every broker down (connections refused, as in an outage) or up:
  /// how tests simulate Kafka being unreachable.
  void set_brokers_up(bool up);

private:
  embedded_kafka() = default;
  ::rd_kafka_s* handle_ = nullptr;
  std::string bootstrap_;
  int brokers_ = 0;
};

/// Sends librdkafka's own log lines (a broker unreachable, ...) to the
/// persistence logger at warn, instead of raw lines on stderr.
void route_kafka_logs(::rd_kafka_conf_s* conf);

} // namespace emporium::persistence
