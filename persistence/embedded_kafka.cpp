#include "persistence/embedded_kafka.hpp"

#include "persistence/log.hpp"
#include "protocols/errc.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>

namespace emporium::persistence {

void route_kafka_logs(rd_kafka_conf_t* conf) {
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t*, int, const char* facility, const char* line) {
    log()->warn("event=kafka_client facility={} detail=\"{}\"", facility, line);
  });
}

caf::expected<std::unique_ptr<embedded_kafka>> embedded_kafka::start(int brokers, int partitions) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  auto n = std::to_string(brokers);
  if (rd_kafka_conf_set(conf, "test.mock.num.brokers", n.c_str(), err, sizeof(err))
      != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    log()->error("event=embedded_kafka_failed detail=\"{}\"", err);
    return caf::make_error(errc::unavailable);
  }
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  route_kafka_logs(conf);
  auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    log()->error("event=embedded_kafka_failed detail=\"{}\"", err);
    return caf::make_error(errc::unavailable);
  }
  std::unique_ptr<embedded_kafka> self{new embedded_kafka};
  self->handle_ = rk;
  self->brokers_ = brokers;
  auto* cluster = rd_kafka_handle_mock_cluster(rk);
  self->bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster);
  for (auto* topic : {"inventory", "orders", "carts", "analytics"})
    rd_kafka_mock_topic_create(cluster, topic, partitions, std::min(brokers, 3));
  log()->info("event=embedded_kafka_started bootstrap={} note=\"librdkafka mock cluster: "
              "in-memory development broker, not durable\"",
              self->bootstrap_);
  return self;
}

void embedded_kafka::set_brokers_up(bool up) {
  auto* cluster = rd_kafka_handle_mock_cluster(handle_);
  for (int id = 1; id <= brokers_; ++id) {
    if (up)
      rd_kafka_mock_broker_set_up(cluster, id);
    else
      rd_kafka_mock_broker_set_down(cluster, id);
  }
  log()->warn("event=embedded_kafka_brokers state={}", up ? "up" : "down");
}

embedded_kafka::~embedded_kafka() {
  if (handle_ != nullptr)
    rd_kafka_destroy(handle_);
}

} // namespace emporium::persistence
