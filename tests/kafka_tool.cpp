// kafka_tool: the Kafka side of the end-to-end tests (a librdkafka client).
//
//   kafka_tool mock [--brokers N] [--partitions P]
//       starts librdkafka's mock cluster with the contract's topics, prints
//       "bootstrap ADDR", then obeys stdin lines: "down" / "up" (every
//       broker; answers "ok"). Exits at end of input.
//   kafka_tool consume --bootstrap ADDR --topics a,b [--count N] [--idle-ms MS]
//       reads the topics from the beginning (direct partition assignment, no
//       group) and prints one JSON line per message:
//       {"topic","partition","offset","key","value":<the value, raw JSON>}.
//       Stops after N messages, or after MS without a new one.
#include "persistence/embedded_kafka.hpp"
#include "protocols/envelope.hpp"
#include "tests/support/tool_flags.hpp"

#include <librdkafka/rdkafka.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

int mock(std::map<std::string, std::string> f) {
  // stdout is the protocol with the test: logs go to stderr.
  spdlog::set_default_logger(spdlog::stderr_logger_mt("kafka_tool"));
  int brokers = f.count("--brokers") ? std::stoi(f["--brokers"]) : 1;
  int partitions = f.count("--partitions") ? std::stoi(f["--partitions"]) : 4;
  auto cluster = emporium::persistence::embedded_kafka::start(brokers, partitions);
  if (!cluster)
    return 1;
  std::cout << "bootstrap " << (*cluster)->bootstrap_servers() << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    if (line == "down" || line == "up") {
      (*cluster)->set_brokers_up(line == "up");
      std::cout << "ok" << std::endl;
    }
  }
  return 0;
}

int consume(std::map<std::string, std::string> f) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", f["--bootstrap"].c_str(), err, sizeof(err));
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
  // assign() joins no group; the id only satisfies the consumer API.
  auto group = "kafka_tool-" + std::to_string(::getpid());
  rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof(err));
  auto* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) {
    std::cerr << "kafka_tool: " << err << "\n";
    return 1;
  }
  size_t count = f.count("--count") ? std::stoul(f["--count"]) : SIZE_MAX;
  auto idle = std::chrono::milliseconds{f.count("--idle-ms") ? std::stoi(f["--idle-ms"]) : 3000};
  auto* parts = rd_kafka_topic_partition_list_new(16);
  std::stringstream topics{f["--topics"]};
  for (std::string t; std::getline(topics, t, ',');) {
    auto* topic = rd_kafka_topic_new(rk, t.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, topic, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::cerr << "kafka_tool: no metadata for " << t << "\n";
      return 1;
    }
    for (int i = 0; i < md->topics[0].partition_cnt; ++i)
      rd_kafka_topic_partition_list_add(parts, t.c_str(), md->topics[0].partitions[i].id)->offset
        = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(topic);
  }
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  size_t seen = 0;
  int errors = 0;
  auto last = std::chrono::steady_clock::now();
  while (seen < count && std::chrono::steady_clock::now() - last < idle) {
    auto* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr)
      continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF
        && errors++ < 5)
      std::cerr << "kafka_tool: " << rd_kafka_message_errstr(m) << "\n";
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::string line = "{\"topic\":";
      emporium::protocols::append_json_string(line, rd_kafka_topic_name(m->rkt));
      line += ",\"partition\":" + std::to_string(m->partition);
      line += ",\"offset\":" + std::to_string(m->offset) + ",\"key\":";
      emporium::protocols::append_json_string(
        line, std::string_view{static_cast<const char*>(m->key), m->key_len});
      line += ",\"value\":";
      line.append(static_cast<const char*>(m->payload), m->len);
      std::cout << line << "}\n";
      ++seen;
      last = std::chrono::steady_clock::now();
    }
    rd_kafka_message_destroy(m);
  }
  std::cout.flush();
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "mock")
    return mock(emporium::test::tool_flags(argc, argv));
  if (cmd == "consume")
    return consume(emporium::test::tool_flags(argc, argv));
  std::cerr << "usage: kafka_tool mock|consume ... (see the source's header)\n";
  return 2;
}
