#include "persistence/pg_store.hpp"

#include "persistence/log.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_pool.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <pqxx/pqxx>

#include <chrono>
#include <optional>

namespace emporium::persistence {

namespace {

using namespace protocols;

// -- SQL, as named constants ----------------------------------------------------

constexpr const char* update_level_sql
  = "UPDATE stock_levels SET on_hand = $3, reserved = $4, committed = $5, "
    "low_stock_threshold = $6, version = $7, last_seq = $8, updated_at = now() "
    "WHERE sku = $1 AND warehouse = $2 AND version = $9";

constexpr const char* insert_level_sql
  = "INSERT INTO stock_levels (sku, warehouse, on_hand, reserved, committed, "
    "low_stock_threshold, version, last_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
    "ON CONFLICT DO NOTHING";

constexpr const char* insert_events_head
  = "INSERT INTO events (event_id, aggregate_type, aggregate_id, event_version, "
    "event_type, event_time, data, metadata) VALUES ";

constexpr const char* upsert_holds_head
  = "INSERT INTO stock_holds (reservation_id, sku, warehouse, quantity, expires_at, "
    "status) VALUES ";

constexpr const char* upsert_holds_tail
  = " ON CONFLICT (reservation_id, sku, warehouse) DO UPDATE SET "
    "quantity = EXCLUDED.quantity, expires_at = EXCLUDED.expires_at, "
    "status = EXCLUDED.status, updated_at = now()";

constexpr const char* load_levels_sql
  = "SELECT warehouse, on_hand, reserved, committed, low_stock_threshold, version, "
    "last_seq FROM stock_levels WHERE sku = $1";

constexpr const char* load_holds_sql
  = "SELECT reservation_id, warehouse, quantity, "
    "(extract(epoch FROM expires_at) * 1000)::bigint, status FROM stock_holds "
    "WHERE sku = $1 AND status IN ('held', 'committed')";

constexpr const char* locate_sql
  = "SELECT sku, warehouse, quantity, (extract(epoch FROM expires_at) * 1000)::bigint, "
    "status FROM stock_holds WHERE reservation_id = $1 ORDER BY warehouse";

// -- metrics --------------------------------------------------------------------

struct store_metrics {
  prometheus::Histogram* batch_events;
  prometheus::Histogram* commit_seconds;
  prometheus::Counter* failures;

  static store_metrics& get() {
    static store_metrics instance = [] {
      auto& reg = metrics::registry();
      auto& size = prometheus::BuildHistogram()
                     .Name("emporium_store_batch_events")
                     .Help("Events written per group-commit transaction")
                     .Register(reg);
      auto& latency = prometheus::BuildHistogram()
                        .Name("emporium_store_commit_seconds")
                        .Help("Latency of one group-commit transaction")
                        .Register(reg);
      auto& fails = prometheus::BuildCounter()
                      .Name("emporium_store_failures_total")
                      .Help("Store operations that failed")
                      .Register(reg);
      return store_metrics{
        &size.Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64,
                                                              128, 256, 512, 1024}),
        &latency.Add({}, metrics::latency_buckets()), &fails.Add({})};
    }();
    return instance;
  }
};

// -- the worker -----------------------------------------------------------------

std::string timestamp_sql(int64_t ms) {
  return "to_timestamp(" + std::to_string(ms) + "::double precision / 1000)";
}

std::string metadata_json(pqxx::work& tx, const domain_event& e) {
  // json_build_object lets PostgreSQL do the JSON escaping of the quoted strings.
  return "json_build_object('correlationId', " + tx.quote(e.correlation_id)
         + ", 'causationId', " + tx.quote(e.causation_id) + ", 'userId', "
         + tx.quote(e.user_id) + ", 'node', " + tx.quote(e.node) + ")::jsonb";
}

struct worker_state {
  std::string dsn;
  std::optional<pqxx::connection> conn;
  static inline const char* name = "pg_store_worker";

  pqxx::connection& connection() {
    if (!conn || !conn->is_open())
      conn.emplace(dsn);
    return *conn;
  }

  /// Runs `fn` in a transaction, turning libpqxx exceptions into errc.
  template <class F>
  auto run(const char* what, F fn) -> caf::result<decltype(fn(std::declval<pqxx::work&>()))> {
    try {
      pqxx::work tx{connection()};
      auto result = fn(tx);
      tx.commit();
      return result;
    } catch (const pqxx::broken_connection& e) {
      conn.reset();
      store_metrics::get().failures->Increment();
      log()->warn("event=store_unavailable op={} detail=\"{}\"", what, e.what());
      return caf::make_error(errc::unavailable);
    } catch (const pqxx::unique_violation& e) {
      store_metrics::get().failures->Increment();
      log()->warn("event=store_conflict op={} detail=\"{}\"", what, e.what());
      return caf::make_error(errc::conflict);
    } catch (const caf::error& e) {
      store_metrics::get().failures->Increment();
      return e;
    } catch (const std::exception& e) {
      store_metrics::get().failures->Increment();
      conn.reset(); // unknown state: start over with a fresh connection
      log()->error("event=store_failed op={} detail=\"{}\"", what, e.what());
      return caf::make_error(errc::unavailable);
    }
  }
};

ok_atom write_batch(pqxx::work& tx, const stock_batch& b) {
  const auto& l = b.after;
  auto updated = tx.exec_params(update_level_sql, l.sku, l.warehouse, l.on_hand, l.reserved,
                                l.committed, l.low_stock_threshold, l.version, l.last_seq,
                                b.expected_version);
  if (updated.affected_rows() == 0) {
    bool inserted = false;
    if (b.expected_version == 0)
      inserted = tx.exec_params(insert_level_sql, l.sku, l.warehouse, l.on_hand, l.reserved,
                                l.committed, l.low_stock_threshold, l.version, l.last_seq)
                   .affected_rows()
                 == 1;
    if (!inserted)
      throw caf::make_error(errc::conflict); // another writer moved the pair
  }
  std::string sql;
  if (!b.events.empty()) {
    sql += insert_events_head;
    for (size_t i = 0; i < b.events.size(); ++i) {
      const auto& e = b.events[i];
      if (i > 0)
        sql += ", ";
      sql += "(" + tx.quote(e.event_id) + "::uuid, " + tx.quote(e.aggregate_type) + ", "
             + tx.quote(e.aggregate_id) + ", " + std::to_string(e.event_version) + ", "
             + tx.quote(e.event_type) + ", " + timestamp_sql(e.event_time_ms) + ", "
             + tx.quote(e.data_json) + "::jsonb, " + metadata_json(tx, e) + ")";
    }
    sql += ";";
  }
  if (!b.hold_changes.empty()) {
    sql += upsert_holds_head;
    for (size_t i = 0; i < b.hold_changes.size(); ++i) {
      const auto& h = b.hold_changes[i];
      if (i > 0)
        sql += ", ";
      sql += "(" + tx.quote(h.reservation_id) + ", " + tx.quote(l.sku) + ", "
             + tx.quote(l.warehouse) + ", " + std::to_string(h.quantity) + ", "
             + timestamp_sql(h.expires_at_ms) + ", " + tx.quote(h.status) + ")";
    }
    sql += upsert_holds_tail;
    sql += ";";
  }
  if (!sql.empty())
    tx.exec(sql);
  return ok_atom_v;
}

sku_snapshot read_sku(pqxx::work& tx, const std::string& sku) {
  sku_snapshot out;
  out.sku = sku;
  for (const auto& row : tx.exec_params(load_levels_sql, sku)) {
    pair_snapshot p;
    p.level.sku = sku;
    p.level.warehouse = row[0].as<std::string>();
    p.level.on_hand = row[1].as<int64_t>();
    p.level.reserved = row[2].as<int64_t>();
    p.level.committed = row[3].as<int64_t>();
    p.level.low_stock_threshold = row[4].as<int64_t>();
    p.level.version = row[5].as<int64_t>();
    p.level.last_seq = row[6].as<int64_t>();
    p.level.available = std::max<int64_t>(0, p.level.on_hand - p.level.reserved);
    out.pairs.push_back(std::move(p));
  }
  for (const auto& row : tx.exec_params(load_holds_sql, sku)) {
    hold_view h{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<int64_t>(),
                row[3].as<int64_t>(), row[4].as<std::string>()};
    for (auto& p : out.pairs)
      if (p.level.warehouse == h.warehouse)
        p.holds.push_back(h);
  }
  return out;
}

reservation_rows read_reservation(pqxx::work& tx, const std::string& id) {
  reservation_rows out;
  for (const auto& row : tx.exec_params(locate_sql, id)) {
    out.sku = row[0].as<std::string>();
    out.holds.push_back(hold_view{id, row[1].as<std::string>(), row[2].as<int64_t>(),
                                  row[3].as<int64_t>(), row[4].as<std::string>()});
  }
  return out;
}

store_actor::behavior_type
pg_worker(store_actor::stateful_pointer<worker_state> self, std::string dsn) {
  self->state.dsn = std::move(dsn);
  return {
    [=](stock_batch& b) -> caf::result<ok_atom> {
      auto& m = store_metrics::get();
      auto start = std::chrono::steady_clock::now();
      auto res = self->state.run("write_batch", [&](pqxx::work& tx) { return write_batch(tx, b); });
      m.batch_events->Observe(static_cast<double>(b.events.size()));
      m.commit_seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      return res;
    },
    [=](load_sku& q) -> caf::result<sku_snapshot> {
      return self->state.run("load_sku", [&](pqxx::work& tx) { return read_sku(tx, q.sku); });
    },
    [=](locate_reservation& q) -> caf::result<reservation_rows> {
      return self->state.run("locate_reservation",
                             [&](pqxx::work& tx) { return read_reservation(tx, q.reservation_id); });
    },
    [=](ping_atom) -> caf::result<ok_atom> {
      return self->state.run("ping", [](pqxx::work& tx) {
        tx.exec("SELECT 1");
        return ok_atom_v;
      });
    },
  };
}

} // namespace

protocols::store_actor spawn_pg_store(caf::actor_system& sys, const pg_store_config& cfg) {
  auto factory = [&sys, dsn = cfg.dsn] {
    return caf::actor_cast<caf::actor>(sys.spawn<caf::detached>(pg_worker, dsn));
  };
  auto pool = caf::actor_pool::make(sys.dummy_execution_unit(), cfg.connections, factory,
                                    caf::actor_pool::round_robin());
  return caf::actor_cast<protocols::store_actor>(pool);
}

} // namespace emporium::persistence
