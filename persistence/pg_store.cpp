#include "persistence/pg_store.hpp"

#include "persistence/log.hpp"
#include "persistence/store_front.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <pqxx/pqxx>

#include <chrono>
#include <limits>
#include <optional>
#include <thread>
#include <unordered_map>

namespace emporium::persistence {

namespace {

using namespace protocols;

// -- SQL, as named constants ----------------------------------------------------

/// The lease row a write is fenced by: the shard ($shard) still at the write's
/// epoch ($epoch). Epoch 0 is an unfenced write (tests of the store alone; a
/// node's store refuses it before any SQL, see pg_store_config::require_fence).
std::string lease_sql(const char* shard, const char* epoch) {
  return std::string{"SELECT 1 WHERE "} + epoch + "::bigint = 0 UNION ALL "
         "SELECT 1 FROM shard_leases WHERE shard = " + shard + "::integer AND epoch = " + epoch;
}

// One batch = one prepared autocommit statement (one round trip, planned
// once per connection): data-modifying CTEs insert the events and upsert the
// holds only if the version-checked write of the level matched. Events and
// holds travel as arrays; the metadata JSON is built by PostgreSQL. The level
// is written only while the shard's lease still has the batch's epoch ($24,
// $25: fencing); the answer says which check refused.
constexpr const char* batch_tail_sql
  = ", written_events AS ("
    "  INSERT INTO event_batches (aggregate_type, aggregate_id, first_version, node, event_ids,"
    "    event_types, event_times, data, correlation_ids, causation_ids, user_ids)"
    "  SELECT 'stock', $1 || '@' || $2, $12::bigint, $10::text, $11::uuid[], $13::text[],"
    "    $14::bigint[], $15::jsonb[], $16::text[], $17::text[], $18::text[]"
    "  WHERE EXISTS (SELECT 1 FROM level) AND cardinality($11::uuid[]) > 0),"
    " written_holds AS ("
    "  INSERT INTO stock_holds (reservation_id, sku, warehouse, quantity, expires_at, status,"
    "    owner)"
    "  SELECT h.id, $1, $2, h.q, to_timestamp(h.ms / 1000.0), h.s, h.o"
    "  FROM unnest($19::text[], $20::bigint[], $21::bigint[], $22::text[], $23::text[])"
    "    AS h(id, q, ms, s, o)"
    "  WHERE EXISTS (SELECT 1 FROM level)"
    "  ON CONFLICT (reservation_id, sku, warehouse) DO UPDATE SET"
    "    quantity = EXCLUDED.quantity, expires_at = EXCLUDED.expires_at,"
    "    status = EXCLUDED.status, updated_at = now())"
    " SELECT (SELECT count(*) FROM level), EXISTS (SELECT 1 FROM lease)";

/// $9 is the expected version; the insert variant (a new pair) ignores it.
const std::string update_batch_sql
  = std::string{"WITH lease AS ("}
    + lease_sql("$24", "$25")
    + "), level AS (UPDATE stock_levels SET on_hand = $3, reserved = $4, "
      "committed = $5, low_stock_threshold = $6, version = $7, last_seq = $8, "
      "updated_at = now() WHERE sku = $1 AND warehouse = $2 AND version = $9 "
      "AND EXISTS (SELECT 1 FROM lease) RETURNING 1)"
    + batch_tail_sql;

const std::string insert_batch_sql
  = std::string{"WITH lease AS ("}
    + lease_sql("$24", "$25")
    + "), level AS (INSERT INTO stock_levels (sku, warehouse, on_hand, reserved, "
      "committed, low_stock_threshold, version, last_seq) "
      "SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE $9::bigint = 0 "
      "AND EXISTS (SELECT 1 FROM lease) ON CONFLICT DO NOTHING RETURNING 1)"
    + batch_tail_sql;

// Many pairs' batches as one statement (one round trip, one plan, one
// execution for all of them): at most one batch per pair, $1..$15 per part
// (index, key, level after, expected version, fence, where its events are in
// the flat event arrays $17..$23), holds flattened with their part's index.
// Each part's level is written only if its own version and epoch checks hold
// (an UPDATE for a known pair, an INSERT for a new one); its events (one
// outbox row, a slice of the flat arrays) and holds only if its level was.
// The answer: per part, written and lease current.
const std::string multi_batch_sql
  = "WITH p AS (SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::bigint[],"
    "  $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[],"
    "  $11::bigint[], $12::bigint[], $13::int[], $14::int[], $15::bigint[]) AS p(i, sku, wh,"
    "  on_hand, reserved, committed, low, version, last_seq, expected, shard, epoch, ev_from,"
    "  ev_count, ev_version)),"
    " f AS (SELECT p.i, p.epoch = 0 OR EXISTS (SELECT 1 FROM shard_leases l"
    "  WHERE l.shard = p.shard::integer AND l.epoch = p.epoch) AS ok FROM p),"
    " upd AS (UPDATE stock_levels s SET on_hand = p.on_hand, reserved = p.reserved,"
    "  committed = p.committed, low_stock_threshold = p.low, version = p.version,"
    "  last_seq = p.last_seq, updated_at = now()"
    "  FROM p JOIN f ON f.i = p.i AND f.ok"
    "  WHERE p.expected <> 0 AND s.sku = p.sku AND s.warehouse = p.wh AND s.version = p.expected"
    "  RETURNING p.i),"
    " ins AS (INSERT INTO stock_levels (sku, warehouse, on_hand, reserved, committed,"
    "  low_stock_threshold, version, last_seq)"
    "  SELECT p.sku, p.wh, p.on_hand, p.reserved, p.committed, p.low, p.version, p.last_seq"
    "  FROM p JOIN f ON f.i = p.i AND f.ok WHERE p.expected = 0"
    "  ON CONFLICT DO NOTHING RETURNING sku, warehouse),"
    " done AS (SELECT i FROM upd UNION ALL"
    "  SELECT p.i FROM p JOIN ins ON ins.sku = p.sku AND ins.warehouse = p.wh),"
    " written_events AS ("
    "  INSERT INTO event_batches (aggregate_type, aggregate_id, first_version, node, event_ids,"
    "    event_types, event_times, data, correlation_ids, causation_ids, user_ids)"
    "  SELECT 'stock', p.sku || '@' || p.wh, p.ev_version, $16::text,"
    "    ($17::uuid[])[p.ev_from:p.ev_from + p.ev_count - 1],"
    "    ($18::text[])[p.ev_from:p.ev_from + p.ev_count - 1],"
    "    ($19::bigint[])[p.ev_from:p.ev_from + p.ev_count - 1],"
    "    ($20::jsonb[])[p.ev_from:p.ev_from + p.ev_count - 1],"
    "    ($21::text[])[p.ev_from:p.ev_from + p.ev_count - 1],"
    "    ($22::text[])[p.ev_from:p.ev_from + p.ev_count - 1],"
    "    ($23::text[])[p.ev_from:p.ev_from + p.ev_count - 1]"
    "  FROM p WHERE p.ev_count > 0 AND p.i IN (SELECT i FROM done) ORDER BY p.i),"
    " written_holds AS ("
    "  INSERT INTO stock_holds (reservation_id, sku, warehouse, quantity, expires_at, status,"
    "    owner)"
    "  SELECT h.id, p.sku, p.wh, h.q, to_timestamp(h.ms / 1000.0), h.s, h.o"
    "  FROM unnest($24::int[], $25::text[], $26::bigint[], $27::bigint[], $28::text[],"
    "    $29::text[]) AS h(i, id, q, ms, s, o)"
    "  JOIN p ON p.i = h.i WHERE h.i IN (SELECT i FROM done)"
    "  ON CONFLICT (reservation_id, sku, warehouse) DO UPDATE SET"
    "    quantity = EXCLUDED.quantity, expires_at = EXCLUDED.expires_at,"
    "    status = EXCLUDED.status, updated_at = now())"
    " SELECT f.i, f.i IN (SELECT i FROM done), f.ok FROM f ORDER BY f.i";

// An entity write: the version-checked write of its row, then its events only
// if that matched (one autocommit statement). $3 is the expected version; the
// insert variant (a new entity) refuses an existing row.
constexpr const char* entity_tail_sql
  = ", written_events AS ("
    "  INSERT INTO event_batches (aggregate_type, aggregate_id, first_version, node, event_ids,"
    "    event_types, event_times, data, correlation_ids, causation_ids, user_ids)"
    "  SELECT $1, $2, $11::bigint, $9::text, $10::uuid[], $12::text[], $13::bigint[],"
    "    $14::jsonb[], $15::text[], $16::text[], $17::text[]"
    "  WHERE EXISTS (SELECT 1 FROM row) AND cardinality($10::uuid[]) > 0)"
    " SELECT (SELECT count(*) FROM row), EXISTS (SELECT 1 FROM lease)";

const std::string entity_update_sql
  = std::string{"WITH lease AS ("}
    + lease_sql("$18", "$19")
    + "), row AS (UPDATE entity_state SET version = $4, owner = $5, status = $6, "
      "state = $7::jsonb, updated_at = to_timestamp($8 / 1000.0) "
      "WHERE aggregate_type = $1 AND aggregate_id = $2 AND version = $3 "
      "AND EXISTS (SELECT 1 FROM lease) RETURNING 1)"
    + entity_tail_sql;

const std::string entity_insert_sql
  = std::string{"WITH lease AS ("}
    + lease_sql("$18", "$19")
    + "), row AS (INSERT INTO entity_state (aggregate_type, aggregate_id, version, "
      "owner, status, state, updated_at) "
      "SELECT $1, $2, $4, $5, $6, $7::jsonb, to_timestamp($8 / 1000.0) "
      "WHERE $3::bigint = 0 AND EXISTS (SELECT 1 FROM lease) "
      "ON CONFLICT DO NOTHING RETURNING 1)"
    + entity_tail_sql;

constexpr const char* load_entity_sql
  = "SELECT version, owner, status, state::text, "
    "(extract(epoch FROM updated_at) * 1000)::bigint FROM entity_state "
    "WHERE aggregate_type = $1 AND aggregate_id = $2";

constexpr const char* load_events_sql
  = "SELECT e.id::text, e.t, b.first_version + e.n - 1, e.ms, e.d::text, e.c, e.k, e.u, b.node "
    "FROM event_batches b, unnest(b.event_ids, b.event_types, b.event_times, b.data, "
    "b.correlation_ids, b.causation_ids, b.user_ids) WITH ORDINALITY AS e(id, t, ms, d, c, k, u, n) "
    "WHERE b.aggregate_type = $1 AND b.aggregate_id = $2 ORDER BY b.first_version, e.n";

constexpr const char* unsettled_sql
  = "SELECT aggregate_id FROM entity_state WHERE aggregate_type = $1 AND state->>'saga' = 'open' "
    "ORDER BY updated_at";

// SKUs whose pairs hold stock for live reservations (their expiry timers live
// in the SKU's actors, so a node taking the shard loads them).
constexpr const char* held_skus_sql
  = "SELECT DISTINCT sku FROM stock_levels WHERE reserved > 0";

constexpr const char* load_levels_sql
  = "SELECT warehouse, on_hand, reserved, committed, low_stock_threshold, version, "
    "last_seq FROM stock_levels WHERE sku = $1";

constexpr const char* load_holds_sql
  = "SELECT reservation_id, warehouse, quantity, "
    "(extract(epoch FROM expires_at) * 1000)::bigint, status, owner FROM stock_holds "
    "WHERE sku = $1 AND status IN ('held', 'committed')";

constexpr const char* locate_sql
  = "SELECT sku, warehouse, quantity, (extract(epoch FROM expires_at) * 1000)::bigint, "
    "status, owner FROM stock_holds WHERE reservation_id = $1 ORDER BY warehouse";

// -- membership and leases (one round of a node's coordinator) ------------------

constexpr const char* heartbeat_sql
  = "INSERT INTO cluster_nodes (id, incarnation, http_address, cluster_address, status, actors) "
    "VALUES ($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT (id) DO UPDATE SET incarnation = EXCLUDED.incarnation, "
    "  http_address = EXCLUDED.http_address, cluster_address = EXCLUDED.cluster_address, "
    "  status = EXCLUDED.status, actors = EXCLUDED.actors, heartbeat_at = now(), "
    "  drain_requested = cluster_nodes.drain_requested "
    "    AND cluster_nodes.incarnation = EXCLUDED.incarnation, "
    "  started_at = CASE WHEN cluster_nodes.incarnation = EXCLUDED.incarnation "
    "    THEN cluster_nodes.started_at ELSE now() END";

// A release bumps the epoch too: nothing written under the old one commits.
constexpr const char* release_sql
  = "UPDATE shard_leases SET node = NULL, incarnation = NULL, epoch = epoch + 1, "
    "expires_at = '-infinity' WHERE incarnation = $1 AND shard = ANY($2::integer[])";

constexpr const char* renew_sql
  = "UPDATE shard_leases SET expires_at = now() + $2 * interval '1 millisecond' "
    "WHERE incarnation = $1 AND expires_at > now()";

// Only a free or lapsed lease is taken, and taking it bumps its epoch.
constexpr const char* acquire_sql
  = "INSERT INTO shard_leases (shard, node, incarnation, epoch, expires_at) "
    "SELECT s, $1, $2, 1, now() + $3 * interval '1 millisecond' FROM unnest($4::integer[]) s "
    "ON CONFLICT (shard) DO UPDATE SET node = EXCLUDED.node, incarnation = EXCLUDED.incarnation, "
    "  epoch = shard_leases.epoch + 1, expires_at = EXCLUDED.expires_at "
    "WHERE shard_leases.expires_at <= now()";

constexpr const char* members_sql
  = "SELECT id, incarnation, http_address, cluster_address, status, actors, "
    "heartbeat_at > now() - $1 * interval '1 millisecond', drain_requested "
    "FROM cluster_nodes ORDER BY id";

constexpr const char* leases_sql
  = "SELECT shard, coalesce(node, ''), coalesce(incarnation, ''), epoch, expires_at > now() "
    "FROM shard_leases ORDER BY shard";

constexpr const char* request_drain_sql
  = "UPDATE cluster_nodes SET drain_requested = true WHERE id = $1 "
    "AND status IN ('joining', 'up', 'draining') AND heartbeat_at > now() - interval '1 minute'";

// -- metrics --------------------------------------------------------------------

struct store_metrics {
  prometheus::Histogram* batch_events;
  prometheus::Histogram* commit_seconds;
  prometheus::Counter* failures;
  prometheus::Counter* fenced;
  prometheus::Histogram* group_parts;
  prometheus::Counter* in_doubt_committed;

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
      auto& fenced = prometheus::BuildCounter()
                       .Name("emporium_fenced_writes_total")
                       .Help("Writes refused because their shard's lease epoch had moved on")
                       .Register(reg);
      auto& parts = prometheus::BuildHistogram()
                      .Name("emporium_store_group_parts")
                      .Help("Entity writes (pairs, carts, orders) per group-commit transaction")
                      .Register(reg);
      auto& doubt = prometheus::BuildCounter()
                      .Name("emporium_store_in_doubt_committed_total")
                      .Help("Writes whose commit outcome was lost with the connection and found committed")
                      .Register(reg);
      auto sizes = prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
      return store_metrics{&size.Add({}, sizes), &latency.Add({}, metrics::latency_buckets()),
                           &fails.Add({}),       &fenced.Add({}),
                           &parts.Add({}, sizes), &doubt.Add({})};
    }();
    return instance;
  }
};

// -- the worker -----------------------------------------------------------------

/// What a failed statement means for the write or read `what` (the
/// transaction it ran in rolled back): conflict, unavailable (cancelled by
/// statement_timeout) or internal.
caf::error statement_failure(const pqxx::sql_error& e, const char* what = "write") {
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    log()->warn("event=store_conflict op={} detail=\"{}\"", what, e.what());
    return caf::make_error(errc::conflict);
  }
  if (e.sqlstate() == "57014") { // query_canceled: statement_timeout
    log()->warn("event=store_statement_timeout op={}", what);
    return caf::make_error(errc::unavailable);
  }
  log()->error("event=store_failed op={} sqlstate={} detail=\"{}\"", what, e.sqlstate(),
               e.what());
  return caf::make_error(errc::internal);
}

struct worker_state {
  std::string dsn;
  std::chrono::milliseconds statement_timeout;
  std::optional<pqxx::connection> conn;
  static inline const char* name = "pg_store_worker";

  pqxx::connection& connection() {
    if (!conn || !conn->is_open()) {
      conn.emplace(dsn);
      pqxx::nontransaction{*conn}.exec("SET statement_timeout = "
                                       + std::to_string(statement_timeout.count()));
      conn->prepare("update_batch", update_batch_sql);
      conn->prepare("insert_batch", insert_batch_sql);
      conn->prepare("multi_batch", multi_batch_sql);
      conn->prepare("entity_update", entity_update_sql);
      conn->prepare("entity_insert", entity_insert_sql);
    }
    return *conn;
  }

  /// Runs `fn` in a transaction of type Tx (pqxx::nontransaction: one
  /// autocommit statement), turning libpqxx exceptions into errc. A connection
  /// found broken is reopened and `fn` tried once more: a dead idle connection
  /// is not an outage. (A write that did commit before the break is refused by
  /// its version check on the retry, so it is never applied twice.)
  template <class Tx = pqxx::work, class F>
  auto run(const char* what, F fn) -> caf::result<decltype(fn(std::declval<Tx&>()))> {
    for (int attempt = 0;; ++attempt) {
      try {
        Tx tx{connection()};
        auto result = fn(tx);
        tx.commit();
        return result;
      } catch (const pqxx::broken_connection& e) {
        conn.reset();
        if (attempt == 0)
          continue;
        store_metrics::get().failures->Increment();
        log()->warn("event=store_unavailable op={} detail=\"{}\"", what, e.what());
        return caf::make_error(errc::unavailable);
      } catch (const pqxx::in_doubt_error& e) {
        conn.reset();
        store_metrics::get().failures->Increment();
        log()->error("event=store_in_doubt op={} detail=\"{}\"", what, e.what());
        return caf::make_error(errc::unavailable);
      } catch (const caf::error& e) {
        store_metrics::get().failures->Increment();
        return e;
      } catch (const pqxx::sql_error& e) {
        store_metrics::get().failures->Increment();
        return statement_failure(e, what);
      } catch (const std::exception& e) {
        store_metrics::get().failures->Increment();
        conn.reset(); // unknown state: start over with a fresh connection
        log()->error("event=store_failed op={} detail=\"{}\"", what, e.what());
        return caf::make_error(errc::unavailable);
      }
    }
  }
};

/// A PostgreSQL array literal of the values, e.g. {"a","b\\"c"}.
template <class T, class F>
std::string array_literal(const std::vector<T>& xs, F field) {
  std::string out = "{";
  for (const auto& x : xs) {
    if (out.size() > 1)
      out += ',';
    if constexpr (std::is_integral_v<std::decay_t<decltype(field(x))>>) {
      out += std::to_string(field(x));
    } else {
      out += '"';
      for (char c : field(x)) {
        if (c == '"' || c == '\\')
          out += '\\';
        out += c;
      }
      out += '"';
    }
  }
  return out + "}";
}

/// Where a batch's events start in their entity's stream (0: no events).
int64_t first_version(const std::vector<domain_event>& ev) {
  return ev.empty() ? 0 : ev.front().event_version;
}

/// Events as the parallel array parameters of the write statements (one
/// outbox row per entity batch, see migration 007).
struct event_columns {
  std::string ids, types, times, data, correlations, causations, users;

  explicit event_columns(const std::vector<domain_event>& ev) : event_columns(pointers(ev)) {}

  explicit event_columns(const std::vector<const domain_event*>& ev) {
    using E = const domain_event*;
    ids = array_literal(ev, [](E e) -> const std::string& { return e->event_id; });
    types = array_literal(ev, [](E e) -> const std::string& { return e->event_type; });
    times = array_literal(ev, [](E e) { return e->event_time_ms; });
    data = array_literal(ev, [](E e) -> const std::string& { return e->data_json; });
    correlations = array_literal(ev, [](E e) -> const std::string& { return e->correlation_id; });
    causations = array_literal(ev, [](E e) -> const std::string& { return e->causation_id; });
    users = array_literal(ev, [](E e) -> const std::string& { return e->user_id; });
  }

  static std::vector<const domain_event*> pointers(const std::vector<domain_event>& ev) {
    std::vector<const domain_event*> out;
    out.reserve(ev.size());
    for (const auto& e : ev)
      out.push_back(&e);
    return out;
  }
};

/// The answer of a write statement, (rows written, lease still current): no
/// error, `fenced` (the shard moved to another owner) or `conflict` (another
/// writer moved the entity). Nothing was written unless there is no error.
caf::error part_outcome(const pqxx::result& r) {
  if (r[0][0].as<int64_t>() == 1)
    return {};
  if (!r[0][1].as<bool>())
    return caf::make_error(errc::fenced);
  return caf::make_error(errc::conflict);
}

caf::error write_batch(pqxx::transaction_base& tx, const stock_batch& b) {
  const auto& l = b.after;
  const auto& ev = b.events;
  const auto& hs = b.hold_changes;
  using H = hold_view;
  auto node = ev.empty() ? std::string{} : ev.front().node;
  event_columns c{ev};
  auto r = tx.exec_prepared(
    b.expected_version == 0 ? "insert_batch" : "update_batch", l.sku, l.warehouse, l.on_hand,
    l.reserved, l.committed, l.low_stock_threshold, l.version, l.last_seq, b.expected_version,
    node,
    c.ids, first_version(ev), c.types, c.times, c.data, c.correlations, c.causations, c.users,
    array_literal(hs, [](const H& h) -> const std::string& { return h.reservation_id; }),
    array_literal(hs, [](const H& h) { return h.quantity; }),
    array_literal(hs, [](const H& h) { return h.expires_at_ms; }),
    array_literal(hs, [](const H& h) -> const std::string& { return h.status; }),
    array_literal(hs, [](const H& h) -> const std::string& { return h.owner; }),
    static_cast<int64_t>(b.under.shard), b.under.epoch);
  return part_outcome(r);
}

/// Writes the batches of distinct pairs `parts` (indexes into g.stock) with
/// one statement; stores each part's outcome in results.
void write_batches(pqxx::transaction_base& tx, const std::vector<stock_batch>& batches,
                   const std::vector<size_t>& parts, std::vector<caf::error>& results) {
  std::vector<const stock_batch*> b;
  for (auto k : parts)
    b.push_back(&batches[k]);
  using B = const stock_batch*;
  std::vector<const domain_event*> flat; // every part's events, each part's a slice
  std::vector<int64_t> idx, ev_from, ev_count;
  std::vector<std::pair<int64_t, const hold_view*>> hs;
  std::string node;
  for (size_t i = 0; i < b.size(); ++i) {
    idx.push_back(static_cast<int64_t>(i));
    ev_from.push_back(static_cast<int64_t>(flat.size()) + 1);
    ev_count.push_back(static_cast<int64_t>(b[i]->events.size()));
    for (const auto& e : b[i]->events)
      flat.push_back(&e);
    for (auto& h : b[i]->hold_changes)
      hs.emplace_back(static_cast<int64_t>(i), &h);
  }
  if (!flat.empty())
    node = flat.front()->node;
  event_columns c{flat};
  using H = std::pair<int64_t, const hold_view*>;
  auto number = [](int64_t i) { return i; };
  auto r = tx.exec_prepared(
    "multi_batch", array_literal(idx, number),
    array_literal(b, [](B x) -> const std::string& { return x->after.sku; }),
    array_literal(b, [](B x) -> const std::string& { return x->after.warehouse; }),
    array_literal(b, [](B x) { return x->after.on_hand; }),
    array_literal(b, [](B x) { return x->after.reserved; }),
    array_literal(b, [](B x) { return x->after.committed; }),
    array_literal(b, [](B x) { return x->after.low_stock_threshold; }),
    array_literal(b, [](B x) { return x->after.version; }),
    array_literal(b, [](B x) { return x->after.last_seq; }),
    array_literal(b, [](B x) { return x->expected_version; }),
    array_literal(b, [](B x) { return static_cast<int64_t>(x->under.shard); }),
    array_literal(b, [](B x) { return x->under.epoch; }), array_literal(ev_from, number),
    array_literal(ev_count, number),
    array_literal(b, [](B x) { return first_version(x->events); }),
    node, c.ids, c.types, c.times, c.data, c.correlations, c.causations, c.users,
    array_literal(hs, [](const H& h) { return h.first; }),
    array_literal(hs, [](const H& h) -> const std::string& { return h.second->reservation_id; }),
    array_literal(hs, [](const H& h) { return h.second->quantity; }),
    array_literal(hs, [](const H& h) { return h.second->expires_at_ms; }),
    array_literal(hs, [](const H& h) -> const std::string& { return h.second->status; }),
    array_literal(hs, [](const H& h) -> const std::string& { return h.second->owner; }));
  for (const auto& row : r) {
    auto i = row[0].as<size_t>();
    auto& out = results[parts[i]];
    if (row[1].as<bool>())
      out = {};
    else
      out = caf::make_error(row[2].as<bool>() ? errc::conflict : errc::fenced);
  }
}

caf::error write_entity(pqxx::transaction_base& tx, const entity_write& w) {
  const auto& a = w.after;
  const auto& ev = w.events;
  auto node = ev.empty() ? std::string{} : ev.front().node;
  event_columns c{ev};
  auto r = tx.exec_prepared(
    w.expected_version == 0 ? "entity_insert" : "entity_update", a.aggregate_type,
    a.aggregate_id, w.expected_version, a.version, a.owner, a.status, a.state_json.empty() ? std::string{"{}"} : a.state_json, a.updated_at_ms, node,
    c.ids, first_version(ev), c.types, c.times, c.data, c.correlations, c.causations, c.users,
    static_cast<int64_t>(w.under.shard), w.under.epoch);
  return part_outcome(r);
}

entity_record read_entity(pqxx::work& tx, const load_entity& q) {
  entity_record out{q.aggregate_type, q.aggregate_id};
  auto r = tx.exec_params(load_entity_sql, q.aggregate_type, q.aggregate_id);
  if (!r.empty()) {
    out.version = r[0][0].as<int64_t>();
    out.owner = r[0][1].as<std::string>();
    out.status = r[0][2].as<std::string>();
    out.state_json = r[0][3].as<std::string>();
    out.updated_at_ms = r[0][4].as<int64_t>();
  }
  return out;
}

std::vector<domain_event> read_events(pqxx::work& tx, const load_events& q) {
  std::vector<domain_event> out;
  for (const auto& row : tx.exec_params(load_events_sql, q.aggregate_type, q.aggregate_id))
    out.push_back(domain_event{row[0].as<std::string>(), row[1].as<std::string>(),
                               q.aggregate_id, q.aggregate_type, row[2].as<int64_t>(),
                               row[3].as<int64_t>(), row[4].as<std::string>(),
                               row[5].as<std::string>(), row[6].as<std::string>(),
                               row[7].as<std::string>(), row[8].as<std::string>()});
  return out;
}

entity_ids read_unsettled(pqxx::work& tx, const find_unsettled& q) {
  entity_ids out;
  auto rows = q.aggregate_type == "sku" ? tx.exec(held_skus_sql)
                                         : tx.exec_params(unsettled_sql, q.aggregate_type);
  for (const auto& row : rows)
    out.ids.push_back(row[0].as<std::string>());
  return out;
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
  auto holds = tx.exec_params(load_holds_sql, sku);
  if (out.pairs.size() == 1)
    out.pairs[0].holds.reserve(holds.size());
  for (const auto& row : holds) {
    hold_view h{row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<int64_t>(),
                row[3].as<int64_t>(), row[4].as<std::string>(), row[5].as<std::string>()};
    for (auto& p : out.pairs)
      if (p.level.warehouse == h.warehouse) {
        p.holds.push_back(std::move(h));
        break;
      }
  }
  return out;
}

reservation_rows read_reservation(pqxx::work& tx, const std::string& id) {
  reservation_rows out;
  for (const auto& row : tx.exec_params(locate_sql, id)) {
    out.sku = row[0].as<std::string>();
    out.holds.push_back(hold_view{id, row[1].as<std::string>(), row[2].as<int64_t>(),
                                  row[3].as<int64_t>(), row[4].as<std::string>(),
                                  row[5].as<std::string>()});
  }
  return out;
}

/// A write without a shard epoch reached a store that requires one: a bug,
/// refused rather than written unfenced.
caf::error unfenced(const char* what) {
  store_metrics::get().fenced->Increment();
  log()->error("event=store_unfenced_write op={}", what);
  return caf::make_error(errc::fenced);
}

/// Whether part k of `g` landed, read after its commit's outcome was lost (the
/// connection broke during COMMIT, or during a lone autocommit statement).
/// Its row still at the version it expected: it did not. At the version it
/// wrote, under a shard epoch that has not moved: it did (only the lease
/// holder writes). Anything else (another owner wrote since): its outbox row
/// is looked up by where its batch starts and its first event's id.
bool landed(pqxx::work& tx, const write_group& g, size_t k) {
  auto ns = g.stock.size();
  const bool pair = k < ns;
  auto expected = pair ? g.stock[k].expected_version : g.entities[k - ns].expected_version;
  auto after = pair ? g.stock[k].after.version : g.entities[k - ns].after.version;
  const auto& under = pair ? g.stock[k].under : g.entities[k - ns].under;
  const auto& events = pair ? g.stock[k].events : g.entities[k - ns].events;
  auto row = pair ? tx.exec_params("SELECT version FROM stock_levels WHERE sku = $1 AND warehouse = $2",
                                   g.stock[k].after.sku, g.stock[k].after.warehouse)
                  : tx.exec_params("SELECT version FROM entity_state "
                                   "WHERE aggregate_type = $1 AND aggregate_id = $2",
                                   g.entities[k - ns].after.aggregate_type,
                                   g.entities[k - ns].after.aggregate_id);
  if (row.empty() || row[0][0].as<int64_t>() == expected)
    return false;
  auto stored = row[0][0].as<int64_t>();
  if (stored == after) {
    if (under.epoch == 0)
      return true;
    auto lease = tx.exec_params("SELECT epoch FROM shard_leases WHERE shard = $1",
                                static_cast<int64_t>(under.shard));
    if (!lease.empty() && lease[0][0].as<int64_t>() == under.epoch)
      return true;
  }
  if (events.empty())
    return stored >= after;
  const auto& first = events.front();
  return !tx.exec_params("SELECT 1 FROM event_batches WHERE aggregate_type = $1 "
                         "AND aggregate_id = $2 AND first_version = $3 AND event_ids[1] = $4::uuid",
                         first.aggregate_type, first.aggregate_id, first.event_version,
                         first.event_id)
            .empty();
}

/// How long a worker keeps asking whether an in-doubt commit landed before it
/// gives up and answers unavailable (logged as unresolved).
constexpr auto doubt_limit = std::chrono::seconds{60};

/// Whether the transaction that wrote part k (of `g`) committed, asked on a
/// new connection until PostgreSQL answers (the worker blocks meanwhile; the
/// store's breaker refuses what waits for it), or nullopt after doubt_limit.
std::optional<bool> resolve_in_doubt(worker_state& st, const write_group& g, size_t k) {
  auto since = std::chrono::steady_clock::now();
  for (;;) {
    try {
      st.conn.reset();
      pqxx::work tx{st.connection()};
      auto yes = landed(tx, g, k);
      tx.commit();
      log()->warn("event=store_in_doubt_resolved committed={}", yes);
      return yes;
    } catch (const std::exception& e) {
      if (std::chrono::steady_clock::now() - since > doubt_limit) {
        log()->error("event=store_in_doubt_unresolved detail=\"{}\"", e.what());
        return std::nullopt;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    }
  }
}

/// One transaction for every part of the group (autocommit for a lone part:
/// one round trip, as before group commit). The pairs' batches go as one
/// statement per round of distinct pairs (multi_batch_sql), carts and orders
/// one statement each. Each part is answered by its own checks. A statement of
/// many parts that fails is rolled back and the group goes again one
/// statement per part, to find the failing one; a part's own statement that
/// fails rolls the transaction back too: that part (and its entity's later
/// parts, which depend on it) gets its error and the others go again without it. A connection found broken is
/// reopened once (nothing was committed); a break during COMMIT leaves the
/// outcome unknown, answered unavailable (the version check refuses a retry
/// that would apply it twice).
group_outcome commit_group(worker_state& st, const write_group& g, bool require_fence) {
  auto ns = g.stock.size();
  auto n = ns + g.entities.size();
  group_outcome out;
  out.stock.resize(ns);
  out.entities.resize(g.entities.size());
  std::vector<char> decided(n, 0);
  auto outcome = [&](size_t k) -> caf::error& {
    return k < ns ? out.stock[k] : out.entities[k - ns];
  };
  auto same_entity = [&](size_t a, size_t b) {
    if ((a < ns) != (b < ns))
      return false;
    if (a < ns)
      return g.stock[a].after.sku == g.stock[b].after.sku
             && g.stock[a].after.warehouse == g.stock[b].after.warehouse;
    auto& x = g.entities[a - ns].after;
    auto& y = g.entities[b - ns].after;
    return x.aggregate_id == y.aggregate_id && x.aggregate_type == y.aggregate_type;
  };
  auto decide = [&](size_t k, const caf::error& err) {
    for (size_t j = k; j < n; ++j)
      if (!decided[j] && same_entity(k, j)) {
        outcome(j) = err;
        decided[j] = 1;
      }
  };
  auto decide_rest = [&](const caf::error& err) {
    for (size_t k = 0; k < n; ++k)
      if (!decided[k]) {
        outcome(k) = err;
        decided[k] = 1;
      }
  };
  auto exec = [&](pqxx::transaction_base& tx, size_t k) {
    return k < ns ? write_batch(tx, g.stock[k]) : write_entity(tx, g.entities[k - ns]);
  };
  if (require_fence)
    for (size_t k = 0; k < n; ++k)
      if ((k < ns ? g.stock[k].under.epoch : g.entities[k - ns].under.epoch) == 0)
        decide(k, unfenced(k < ns ? "write_batch" : "entity_write"));
  auto& m = store_metrics::get();
  auto start = std::chrono::steady_clock::now();
  constexpr auto none = std::numeric_limits<size_t>::max();
  constexpr auto many = none - 1; // a statement of many parts: which one failed is unknown
  std::vector<caf::error> results(n);
  bool one_by_one = false; // after a failed statement of many parts: find the failing one
  for (bool reopened = false;;) {
    std::vector<size_t> todo;
    for (size_t k = 0; k < n; ++k)
      if (!decided[k])
        todo.push_back(k);
    if (todo.empty())
      break;
    size_t at = none;
    std::optional<std::string> lost; // the connection broke: what libpqxx said
    bool doubt = false;              // during COMMIT
    try {
      if (todo.size() == 1) {
        // A connection the server closed while idle shows it now (one
        // non-blocking read), before the statement is sent: not in doubt.
        st.connection().get_notifs();
        pqxx::nontransaction tx{st.connection()};
        at = todo[0];
        results[at] = exec(tx, at);
      } else {
        pqxx::work tx{st.connection()};
        if (one_by_one) {
          for (auto k : todo) {
            at = k;
            results[k] = exec(tx, k);
          }
        } else {
          // The pairs' batches in rounds of distinct pairs, one statement each
          // (a pair's later batch in a later round: it builds on the earlier).
          std::vector<std::vector<size_t>> rounds;
          std::unordered_map<std::string, size_t> seen; // batches per pair so far
          for (size_t a = 0; a < todo.size() && todo[a] < ns; ++a) {
            auto& l = g.stock[todo[a]].after;
            auto round = seen[l.warehouse + '\x1f' + l.sku]++;
            if (rounds.size() <= round)
              rounds.resize(round + 1);
            rounds[round].push_back(todo[a]);
          }
          for (auto& parts : rounds) {
            at = parts.size() == 1 ? parts[0] : many;
            if (parts.size() == 1)
              results[parts[0]] = exec(tx, parts[0]);
            else
              write_batches(tx, g.stock, parts, results);
          }
          for (auto k : todo)
            if (k >= ns) {
              at = k;
              results[k] = exec(tx, k);
            }
        }
        at = none;
        tx.commit();
      }
      size_t events = 0;
      for (auto k : todo) {
        if (results[k] && to_errc(results[k]) == errc::fenced)
          m.fenced->Increment();
        if (!results[k])
          events += k < ns ? g.stock[k].events.size() : g.entities[k - ns].events.size();
        outcome(k) = results[k];
        decided[k] = 1;
      }
      m.batch_events->Observe(static_cast<double>(events));
      m.group_parts->Observe(static_cast<double>(todo.size()));
      break;
    } catch (const pqxx::broken_connection& e) {
      lost = e.what();
    } catch (const pqxx::in_doubt_error& e) {
      lost = e.what();
      doubt = true;
    } catch (const pqxx::sql_error& e) {
      if (auto c = e.sqlstate(); c.rfind("57P", 0) == 0 || c.rfind("08", 0) == 0) {
        // The server ended the session (shutdown, crash, terminated): the
        // connection is gone, as if it had broken.
        lost = e.what();
        doubt = at == none && todo.size() > 1;
      } else {
        m.failures->Increment();
        if (at == none) // the COMMIT itself was refused: nothing was written
          decide_rest(statement_failure(e));
        else if (at == many)
          one_by_one = true; // again, one statement per part, to find the failing one
        else
          decide(at, statement_failure(e)); // the others go again without it
      }
    } catch (const std::exception& e) {
      st.conn.reset(); // unknown state: start over with a fresh connection
      m.failures->Increment();
      log()->error("event=store_failed op=write detail=\"{}\"", e.what());
      decide_rest(caf::make_error(errc::unavailable));
    }
    if (!lost)
      continue;
    // The connection broke (broken_connection), or broke during COMMIT
    // (in_doubt_error). Before anything was sent, or inside a transaction
    // before COMMIT: nothing landed. During COMMIT or a lone autocommit
    // statement: PostgreSQL is asked once it answers again, so the answer is
    // the definite outcome.
    st.conn.reset();
    if (doubt || (at != none && todo.size() == 1)) {
      // The part to ask about: one that wrote (all parts share the transaction).
      auto probe = todo.size() == 1 ? todo[0] : none;
      for (auto k : todo)
        if (probe == none && !results[k])
          probe = k;
      if (probe == none) { // every part refused by its own checks: nothing written either way
        for (auto k : todo) {
          outcome(k) = results[k];
          decided[k] = 1;
        }
        break;
      }
      log()->error("event=store_in_doubt op=write parts={} detail=\"{}\"", todo.size(), *lost);
      auto yes = resolve_in_doubt(st, g, probe);
      if (yes && *yes) {
        m.in_doubt_committed->Increment();
        for (auto k : todo) {
          outcome(k) = todo.size() == 1 ? caf::error{} : results[k];
          decided[k] = 1;
        }
        break;
      }
      if (!yes) {
        m.failures->Increment();
        decide_rest(caf::make_error(errc::unavailable, std::string{"the write's outcome is unknown"}));
        break;
      }
      // It did not land: as if the connection broke before COMMIT.
    }
    if (!reopened) {
      reopened = true;
      continue;
    }
    m.failures->Increment();
    log()->warn("event=store_unavailable op=write detail=\"{}\"", *lost);
    decide_rest(caf::make_error(errc::unavailable));
  }
  m.commit_seconds->Observe(
    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return out;
}

/// One worker: a connection of its own, blocking (detached).
using store_worker = caf::typed_actor<
  caf::replies_to<write_group>::with<group_outcome>,
  caf::replies_to<load_sku>::with<sku_snapshot>,
  caf::replies_to<locate_reservation>::with<reservation_rows>,
  caf::replies_to<load_entity>::with<entity_record>,
  caf::replies_to<load_events>::with<std::vector<domain_event>>,
  caf::replies_to<find_unsettled>::with<entity_ids>,
  caf::replies_to<ping_atom>::with<ok_atom>>;

store_worker::behavior_type
pg_worker(store_worker::stateful_pointer<worker_state> self, pg_store_config cfg) {
  self->state.dsn = with_client_timeouts(cfg.dsn);
  self->state.statement_timeout = cfg.statement_timeout;
  return {
    [=](write_group& g) -> group_outcome {
      return commit_group(self->state, g, cfg.require_fence);
    },
    [=](load_entity& q) -> caf::result<entity_record> {
      return self->state.run("load_entity", [&](pqxx::work& tx) { return read_entity(tx, q); });
    },
    [=](load_events& q) -> caf::result<std::vector<domain_event>> {
      return self->state.run("load_events", [&](pqxx::work& tx) { return read_events(tx, q); });
    },
    [=](find_unsettled& q) -> caf::result<entity_ids> {
      return self->state.run("find_unsettled",
                             [&](pqxx::work& tx) { return read_unsettled(tx, q); });
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

cluster_state run_round(pqxx::work& tx, const cluster_tick& t) {
  const auto& m = t.self;
  tx.exec_params(heartbeat_sql, m.id, m.incarnation, m.http_address, m.cluster_address, m.status,
                 m.actors);
  auto ints = [](const std::vector<uint32_t>& xs) {
    return array_literal(xs, [](uint32_t x) { return static_cast<int64_t>(x); });
  };
  if (!t.release.empty())
    tx.exec_params(release_sql, m.incarnation, ints(t.release));
  tx.exec_params(renew_sql, m.incarnation, t.lease_ms);
  if (!t.acquire.empty())
    tx.exec_params(acquire_sql, m.id, m.incarnation, t.lease_ms, ints(t.acquire));
  cluster_state out;
  for (const auto& row : tx.exec_params(members_sql, t.lease_ms))
    out.members.push_back(member{row[0].as<std::string>(), row[1].as<std::string>(),
                                 row[2].as<std::string>(), row[3].as<std::string>(),
                                 row[4].as<std::string>(), row[5].as<int64_t>(),
                                 row[6].as<bool>(), row[7].as<bool>()});
  for (const auto& row : tx.exec(leases_sql))
    out.leases.push_back(shard_lease{row[0].as<uint32_t>(), row[1].as<std::string>(),
                                     row[2].as<std::string>(), row[3].as<int64_t>(),
                                     row[4].as<bool>()});
  return out;
}

membership_actor::behavior_type
membership_worker(membership_actor::stateful_pointer<worker_state> self, pg_store_config cfg) {
  self->state.dsn = with_client_timeouts(cfg.dsn);
  self->state.statement_timeout = cfg.statement_timeout;
  return {
    [=](cluster_tick& t) -> caf::result<cluster_state> {
      return self->state.run("cluster_round", [&](pqxx::work& tx) { return run_round(tx, t); });
    },
    [=](request_drain& q) -> caf::result<ok_atom> {
      return self->state.run("request_drain", [&](pqxx::work& tx) -> ok_atom {
        if (tx.exec_params(request_drain_sql, q.node).affected_rows() == 0)
          throw caf::make_error(errc::not_found, std::string{"no such node in the cluster"});
        return ok_atom_v;
      });
    },
  };
}

/// The membership worker's front, on the scheduler: handles to it may be
/// held anywhere (the gateway's drain route); the detached worker behind it is
/// linked, so it stops with the front, and only the front's behavior refers to
/// it, so nothing keeps its thread once the front is gone.
membership_actor::behavior_type membership_front(membership_actor::pointer self,
                                                 membership_actor worker) {
  self->link_to(worker);
  return {
    [=](cluster_tick& t) { return self->delegate(worker, std::move(t)); },
    [=](request_drain& q) { return self->delegate(worker, std::move(q)); },
  };
}

} // namespace

std::string with_client_timeouts(const std::string& dsn) {
  static constexpr std::pair<const char*, const char*> defaults[] = {
    {"connect_timeout", "5"},      {"keepalives", "1"},         {"keepalives_idle", "10"},
    {"keepalives_interval", "5"}, {"keepalives_count", "3"},   {"tcp_user_timeout", "15000"}};
  bool url = dsn.rfind("postgresql://", 0) == 0 || dsn.rfind("postgres://", 0) == 0;
  std::string out = dsn;
  for (auto& [key, value] : defaults) {
    if (dsn.find(std::string{key} + "=") != std::string::npos)
      continue;
    if (url)
      out += (out.find('?') == std::string::npos ? "?" : "&") + std::string{key} + "=" + value;
    else
      out += " " + std::string{key} + "=" + value;
  }
  return out;
}

protocols::membership_actor spawn_membership(caf::actor_system& sys, const pg_store_config& cfg) {
  return sys.spawn(membership_front, sys.spawn<caf::detached>(membership_worker, cfg));
}

caf::actor spawn_pg_worker(caf::actor_system& sys, const pg_store_config& cfg) {
  return caf::actor_cast<caf::actor>(sys.spawn<caf::detached>(pg_worker, cfg));
}

protocols::store_actor spawn_pg_store(caf::actor_system& sys, const pg_store_config& cfg) {
  std::vector<caf::actor> workers;
  for (size_t i = 0; i < std::max<size_t>(1, cfg.connections); ++i)
    workers.push_back(spawn_pg_worker(sys, cfg));
  store_front_config front;
  front.unreachable = cfg.unreachable;
  front.respawn_worker = [&sys, cfg] { return spawn_pg_worker(sys, cfg); };
  return spawn_store_front(sys, std::move(workers), front, spawn_pg_worker(sys, cfg));
}

} // namespace emporium::persistence
