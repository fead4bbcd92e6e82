#include "persistence/outbox_relay.hpp"

#include "persistence/embedded_kafka.hpp"
#include "persistence/log.hpp"
#include "persistence/pg_store.hpp"
#include "protocols/envelope.hpp"
#include "protocols/metrics.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <librdkafka/rdkafka.h>
#include <pqxx/pqxx>

#include <memory>
#include <optional>

namespace emporium::persistence {

namespace {

using namespace protocols;
using clock_type = std::chrono::steady_clock;

/// Held for the life of the relay's session: one active relay per database.
constexpr const char* leader_sql = "SELECT pg_try_advisory_lock(4242002)";

/// The relay's high-water mark (migrations 005, 007): everything up to the event
/// (txid, position, event_version) is in Kafka. Read every round rather than kept in
/// memory: the row is the truth, so an operator can move it back to send events again.
constexpr const char* read_mark_sql
  = "SELECT txid::text, position, event_version FROM outbox_progress";

/// The next events after the mark, of transactions older than every running one
/// (txid < xmin): a transaction still open may hold a lower position, but never a
/// lower txid than xmin, so nothing behind the mark can appear later. An outbox row
/// holds one entity batch: at most $4 rows are read and expanded, at most $4 events
/// sent; the mark may end inside a row.
constexpr const char* fetch_sql
  = "SELECT b.position, b.txid::text, b.first_version + e.n - 1, e.id::text, b.aggregate_type, "
    "b.aggregate_id, e.t, e.ms, e.d::text, e.c, e.k, e.u, b.node "
    "FROM (SELECT * FROM event_batches WHERE (txid, position) >= ($1::xid8, $2::bigint) "
    "  AND txid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY txid, position LIMIT $4) b, "
    "unnest(b.event_ids, b.event_types, b.event_times, b.data, b.correlation_ids, "
    "  b.causation_ids, b.user_ids) WITH ORDINALITY AS e(id, t, ms, d, c, k, u, n) "
    "WHERE (b.txid, b.position, b.first_version + e.n - 1) > ($1::xid8, $2::bigint, $3::bigint) "
    "ORDER BY b.txid, b.position, e.n LIMIT $4"; // the columns, not the text output

constexpr const char* mark_sql
  = "UPDATE outbox_progress SET txid = $1::xid8, position = $2, event_version = $3, "
    "updated_at = now()";

/// Events after the mark, and the age of the oldest batch they are in.
constexpr const char* lag_sql
  = "SELECT coalesce(sum(cardinality(event_ids) - CASE WHEN (txid, position) = ($1::xid8, $2) "
    "  THEN $3 - first_version + 1 ELSE 0 END), 0), "
    "coalesce(extract(epoch FROM now()) - min(event_times[1]) / 1000.0, 0)::float8 "
    "FROM event_batches WHERE (txid, position) >= ($1::xid8, $2::bigint) "
    "AND ((txid, position) > ($1::xid8, $2::bigint) "
    "  OR first_version + cardinality(event_ids) - 1 > $3::bigint)";

struct relay_metrics {
  prometheus::Gauge* lag_events;
  prometheus::Gauge* lag_seconds;
  prometheus::Gauge* active;
  prometheus::Gauge* breaker_state;
  prometheus::Counter* published;
  prometheus::Counter* failed;
  prometheus::Histogram* round_seconds;

  static relay_metrics& get() {
    static relay_metrics instance = [] {
      auto& reg = metrics::registry();
      auto gauge = [&reg](const char* name, const char* help) {
        return &prometheus::BuildGauge().Name(name).Help(help).Register(reg).Add({});
      };
      auto counter = [&reg](const char* name, const char* help) {
        return &prometheus::BuildCounter().Name(name).Help(help).Register(reg).Add({});
      };
      relay_metrics m;
      m.lag_events = gauge("emporium_outbox_lag_events", "Committed events not yet in Kafka");
      m.lag_seconds = gauge("emporium_outbox_lag_seconds",
                            "Age of the oldest committed event not yet in Kafka");
      m.active = gauge("emporium_outbox_relay_active",
                       "1 when this node's relay holds the outbox lock");
      m.breaker_state = gauge("emporium_outbox_breaker_state", "0 closed, 1 open, 2 half-open");
      m.published = counter("emporium_outbox_published_total", "Events delivered to Kafka");
      m.failed = counter("emporium_outbox_delivery_failures_total",
                         "Events Kafka did not acknowledge (sent again later)");
      m.round_seconds = &prometheus::BuildHistogram()
                           .Name("emporium_outbox_round_seconds")
                           .Help("One relay round: read, produce, delivery reports, mark")
                           .Register(reg)
                           .Add({}, metrics::latency_buckets());
      return m;
    }();
    return instance;
  }
};

/// A point in the relay's order.
struct outbox_mark {
  std::string txid;
  int64_t position = 0;
  int64_t event_version = 0; ///< the last delivered event of the row at position
};

struct outbox_row {
  outbox_mark at;
  domain_event event;
};

/// An idempotent librdkafka producer (acks=all) that sends one round and
/// waits for its delivery reports.
class producer {
public:
  ~producer() {
    if (rk_ != nullptr) {
      rd_kafka_flush(rk_, 1000);
      rd_kafka_destroy(rk_);
    }
  }

  static std::unique_ptr<producer> make(const outbox_config& cfg) {
    char err[512];
    auto* conf = rd_kafka_conf_new();
    std::vector<std::pair<std::string, std::string>> props{
      {"bootstrap.servers", cfg.bootstrap},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "2"},
      {"message.timeout.ms", std::to_string(cfg.delivery_timeout.count())},
      {"reconnect.backoff.max.ms", "1000"},
      {"client.id", "emporium-outbox-" + cfg.node},
      {"log_level", "3"}};
    props.insert(props.end(), cfg.kafka_properties.begin(), cfg.kafka_properties.end());
    for (auto& [key, value] : props) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err))
          != RD_KAFKA_CONF_OK) {
        log()->error("event=outbox_kafka_config_invalid key={} detail=\"{}\"", key, err);
        rd_kafka_conf_destroy(conf);
        return nullptr;
      }
    }
    route_kafka_logs(conf);
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void*) {
      *static_cast<char*>(m->_private) = m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? 1 : 2;
    });
    auto* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == nullptr) {
      log()->error("event=outbox_producer_failed detail=\"{}\"", err);
      return nullptr;
    }
    std::unique_ptr<producer> p{new producer};
    p->rk_ = rk;
    return p;
  }

  /// Creates those of the contract's topics the cluster lacks.
  void create_topics(int partitions, int replication) {
    std::vector<std::string> missing{"inventory", "orders", "carts", "analytics"};
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk_, 1, nullptr, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      for (int i = 0; i < md->topic_cnt; ++i)
        std::erase(missing, std::string{md->topics[i].topic});
      rd_kafka_metadata_destroy(md);
    }
    if (missing.empty())
      return;
    std::vector<rd_kafka_NewTopic_t*> topics;
    char err[512];
    for (auto& name : missing)
      topics.push_back(rd_kafka_NewTopic_new(name.c_str(), partitions, replication, err, sizeof(err)));
    auto* queue = rd_kafka_queue_new(rk_);
    auto* options = rd_kafka_AdminOptions_new(rk_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(options, 5000, err, sizeof(err));
    rd_kafka_CreateTopics(rk_, topics.data(), topics.size(), options, queue);
    if (auto* ev = rd_kafka_queue_poll(queue, 10000); ev != nullptr) {
      if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log()->warn("event=outbox_topics_not_created detail=\"{}\" hint=\"create inventory, "
                    "orders, carts, analytics or allow auto-creation\"",
                    rd_kafka_event_error_string(ev));
      } else if (auto* res = rd_kafka_event_CreateTopics_result(ev); res != nullptr) {
        size_t n = 0;
        auto** results = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; ++i) {
          auto code = rd_kafka_topic_result_error(results[i]);
          if (code == RD_KAFKA_RESP_ERR_NO_ERROR)
            log()->info("event=outbox_topic_created topic={}", rd_kafka_topic_result_name(results[i]));
          else if (code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            log()->warn("event=outbox_topic_not_created topic={} detail=\"{}\"",
                        rd_kafka_topic_result_name(results[i]), rd_kafka_err2str(code));
        }
      }
      rd_kafka_event_destroy(ev);
    } else {
      log()->warn("event=outbox_topics_not_created detail=\"no answer in 10 s\"");
    }
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_queue_destroy(queue);
    rd_kafka_NewTopic_destroy_array(topics.data(), topics.size());
  }

  /// Produces the rows in order and waits up to `wait` for their reports:
  /// 1 delivered, 2 failed, 0 not produced or no report. Stops producing at
  /// the first local error, so nothing later overtakes it.
  std::unique_ptr<char[]> send(const std::vector<outbox_row>& rows,
                               std::chrono::milliseconds wait) {
    std::unique_ptr<char[]> status{new char[rows.size()]()};
    size_t pending = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& e = rows[i].event;
      auto value = envelope_json(e);
      auto topic = std::string{topic_for(e.aggregate_type)};
      auto err = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_KEY(e.aggregate_id.data(), e.aggregate_id.size()),
        RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(&status[i]), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log()->warn("event=outbox_produce_refused detail=\"{}\"", rd_kafka_err2str(err));
        break;
      }
      ++pending;
    }
    auto deadline = clock_type::now() + wait;
    auto reported = [&] {
      size_t n = 0;
      for (size_t i = 0; i < rows.size(); ++i)
        n += status[i] != 0;
      return n;
    };
    while (reported() < pending && clock_type::now() < deadline)
      rd_kafka_poll(rk_, 20);
    if (rd_kafka_outq_len(rk_) > 0) {
      // Reports still out would write into `status` after it is gone.
      rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(rk_, 2000);
      if (rd_kafka_outq_len(rk_) > 0) {
        log()->error("event=outbox_reports_missing detail=\"status kept alive\"");
        std::unique_ptr<char[]> copy{new char[rows.size()]};
        std::copy(status.get(), status.get() + rows.size(), copy.get());
        (void) status.release(); // leaked on purpose: librdkafka may still write into it
        return copy;
      }
    }
    return status;
  }

  /// A fatal error (idempotence broken): this producer must be replaced.
  bool fatal() {
    char err[256];
    return rd_kafka_fatal_error(rk_, err, sizeof(err)) != RD_KAFKA_RESP_ERR_NO_ERROR;
  }

private:
  producer() = default;
  rd_kafka_t* rk_ = nullptr;
};

struct relay_state {
  outbox_config cfg;
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<producer> kafka;
  std::optional<breaker> gate;
  bool leader = false;
  bool topics_done = false;
  clock_type::time_point next_lag{};

  outbox_mark read_mark() {
    pqxx::nontransaction tx{*conn};
    auto r = tx.exec(read_mark_sql);
    return {r[0][0].as<std::string>(), r[0][1].as<int64_t>(), r[0][2].as<int64_t>()};
  }

  void refresh_lag(relay_metrics& m) {
    auto at = read_mark();
    pqxx::nontransaction tx{*conn};
    auto r = tx.exec_params(lag_sql, at.txid, at.position, at.event_version);
    m.lag_events->Set(r[0][0].as<double>());
    m.lag_seconds->Set(r[0][1].as<double>());
  }

  std::vector<outbox_row> fetch(const outbox_mark& after) {
    pqxx::nontransaction tx{*conn};
    std::vector<outbox_row> rows;
    for (const auto& r : tx.exec_params(fetch_sql, after.txid, after.position,
                                        after.event_version, static_cast<int64_t>(cfg.batch)))
      rows.push_back(
        {{r[1].as<std::string>(), r[0].as<int64_t>(), r[2].as<int64_t>()},
         domain_event{r[3].as<std::string>(), r[6].as<std::string>(), r[5].as<std::string>(),
                      r[4].as<std::string>(), r[2].as<int64_t>(), r[7].as<int64_t>(),
                      r[8].as<std::string>(), r[9].as<std::string>(), r[10].as<std::string>(),
                      r[11].as<std::string>(), r[12].as<std::string>()}});
    return rows;
  }

  /// Moves the mark past the delivered prefix of the round (everything after
  /// the first undelivered event is sent again: at least once, in order per
  /// aggregate). Returns how many events the mark passed.
  size_t mark(const std::vector<outbox_row>& rows, const char* status) {
    size_t n = 0;
    while (n < rows.size() && status[n] == 1)
      ++n;
    if (n > 0) {
      pqxx::nontransaction tx{*conn};
      const auto& at = rows[n - 1].at;
      tx.exec_params(mark_sql, at.txid, at.position, at.event_version);
    }
    return n;
  }

  /// One step; returns how long to wait before the next.
  std::chrono::milliseconds round() {
    using namespace std::chrono_literals;
    auto& m = relay_metrics::get();
    if (!conn)
      conn = std::make_unique<pqxx::connection>(with_client_timeouts(cfg.dsn));
    if (!leader) {
      pqxx::nontransaction tx{*conn};
      leader = tx.exec(leader_sql)[0][0].as<bool>();
      m.active->Set(leader ? 1 : 0);
      if (!leader)
        return 1000ms;
      log()->info("event=outbox_relay_active node={} kafka={}", cfg.node, cfg.bootstrap);
    }
    auto now = clock_type::now();
    if (now >= next_lag) {
      refresh_lag(m);
      next_lag = now + 1s;
    }
    if (!kafka) {
      kafka = producer::make(cfg);
      if (!kafka)
        return 2000ms;
      if (cfg.create_topics && !topics_done)
        kafka->create_topics(cfg.partitions, cfg.replication);
      topics_done = true;
    }
    auto state = gate->current(now);
    m.breaker_state->Set(state == breaker::state::closed ? 0 : state == breaker::state::open ? 1 : 2);
    if (state == breaker::state::open)
      return 200ms;
    auto rows = fetch(read_mark());
    if (rows.empty())
      return cfg.idle_poll;
    if (!gate->allow(now))
      return 200ms;
    auto start = clock_type::now();
    auto status = kafka->send(rows, cfg.delivery_timeout + 1000ms);
    auto marked = mark(rows, status.get());
    m.round_seconds->Observe(std::chrono::duration<double>(clock_type::now() - start).count());
    m.published->Increment(static_cast<double>(marked));
    bool ok = marked == rows.size();
    gate->record(ok, clock_type::now());
    if (kafka->fatal()) {
      log()->error("event=outbox_producer_fatal detail=\"replacing the producer\"");
      kafka.reset();
    }
    if (!ok) {
      m.failed->Increment(static_cast<double>(rows.size() - marked));
      log()->warn("event=outbox_round_failed delivered={} of={} breaker={}", marked, rows.size(),
                  to_string(gate->current(clock_type::now())));
      return 200ms;
    }
    return rows.size() == cfg.batch ? 0ms : cfg.idle_poll;
  }
};

caf::behavior relay(caf::stateful_actor<relay_state>* self, outbox_config cfg) {
  self->state.cfg = std::move(cfg);
  self->state.gate.emplace(self->state.cfg.breaker);
  self->send(self, tick_atom_v);
  return {
    [self](tick_atom) {
      using namespace std::chrono_literals;
      auto& st = self->state;
      std::chrono::milliseconds next = 1000ms;
      try {
        next = st.round();
      } catch (const pqxx::broken_connection& e) {
        log()->warn("event=outbox_store_unavailable detail=\"{}\"", e.what());
        st.conn.reset();
        st.leader = false; // the session and its lock are gone
        relay_metrics::get().active->Set(0);
      } catch (const std::exception& e) {
        log()->error("event=outbox_round_error detail=\"{}\"", e.what());
        st.conn.reset();
        st.leader = false;
        relay_metrics::get().active->Set(0);
      }
      if (next.count() == 0)
        self->send(self, tick_atom_v); // lets an exit message in between rounds
      else
        self->delayed_send(self, next, tick_atom_v);
    },
  };
}

} // namespace

caf::actor spawn_outbox_relay(caf::actor_system& sys, outbox_config cfg) {
  return sys.spawn<caf::detached>(relay, std::move(cfg));
}

} // namespace emporium::persistence
