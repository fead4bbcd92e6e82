#pragma once

#include "protocols/breaker.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace emporium::persistence {

struct outbox_config {
  std::string dsn;       ///< PostgreSQL holding the `events` table
  std::string bootstrap; ///< Kafka bootstrap servers (the embedded broker's or a cluster's)
  /// Extra librdkafka properties for a real cluster (security.protocol, sasl.*, ...).
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  size_t batch = 1000;                       ///< events per produce round
  std::chrono::milliseconds idle_poll{20};   ///< wait after a round that found nothing
  std::chrono::milliseconds delivery_timeout{5000}; ///< librdkafka message.timeout.ms
  /// One round is one call: a round with an undelivered event is a failure;
  /// open, the relay waits instead of producing into a dead cluster.
  protocols::breaker_config breaker{std::chrono::seconds{60}, 1, 0.5, std::chrono::seconds{2}, 1};
  bool create_topics = true; ///< CreateTopics at start (a cluster that refuses: logged)
  int partitions = 6;
  int replication = -1;      ///< -1: the cluster's default
  std::string node;          ///< this node's id, in logs
};

/// Spawns the transactional-outbox relay: a detached actor (libpqxx and the
/// delivery wait block) that moves committed events from PostgreSQL to Kafka.
///
/// - One relay per database is active: it holds a session advisory lock; the
///   relays of other nodes stand by and take over when its session ends.
/// - Each round reads up to `batch` events after the high-water mark
///   (`outbox_progress`) in (txid, position) order, only of transactions older
///   than every running one, produces each to its topic (protocols::topic_for)
///   with the aggregate id as key and the envelope as value (idempotent
///   producer, acks=all), waits for the delivery reports, and moves the mark
///   past the delivered prefix: the rest goes again next round, in order.
/// - Kafka down: rounds fail, the breaker opens, events wait in the table
///   (writes to the shop are not affected); `emporium_outbox_lag_events` and
///   `_seconds` show the backlog. At-least-once: a crash between delivery and
///   the mark sends those events again (consumers drop them by eventId).
caf::actor spawn_outbox_relay(caf::actor_system& sys, outbox_config cfg);

} // namespace emporium::persistence
