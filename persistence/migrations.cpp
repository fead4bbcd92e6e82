#include "persistence/migrations.hpp"

#include "persistence/log.hpp"
#include "persistence/pg_store.hpp"
#include "protocols/errc.hpp"

#include <pqxx/pqxx>

namespace emporium::persistence {

caf::expected<int> migrate(const std::string& dsn) {
  try {
    pqxx::connection conn{with_client_timeouts(dsn)};
    {
      pqxx::work tx{conn};
      // Nodes starting together on a fresh database: one creates the table.
      tx.exec("SELECT pg_advisory_xact_lock(4242001)");
      tx.exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
              "version int PRIMARY KEY, name text NOT NULL, "
              "applied_at timestamptz NOT NULL DEFAULT now())");
      tx.commit();
    }
    int applied = 0;
    for (const auto& m : migrations()) {
      pqxx::work tx{conn};
      tx.exec("SELECT pg_advisory_xact_lock(4242001)");
      auto done = tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1",
                                 m.version);
      if (!done.empty())
        continue;
      tx.exec(m.sql);
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                     m.version, std::string{m.name});
      tx.commit();
      log()->info("event=migration_applied version={} name={}", m.version, m.name);
      ++applied;
    }
    return applied;
  } catch (const pqxx::broken_connection& e) {
    log()->error("event=migrate_failed reason=unreachable detail=\"{}\"", e.what());
    return caf::make_error(errc::unavailable);
  } catch (const std::exception& e) {
    log()->error("event=migrate_failed detail=\"{}\"", e.what());
    return caf::make_error(errc::internal);
  }
}

} // namespace emporium::persistence
