#pragma once

#include "persistence/migrations.hpp"
#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

#include <cstdlib>
#include <string>

/// What every *_pgtest shares: the test server, fresh migrated databases, and
/// an actor system config with the project's message types.
namespace emporium::test {

inline std::string server_dsn() {
  auto* dsn = std::getenv("EMPORIUM_TEST_PG");
  REQUIRE_MESSAGE(dsn != nullptr, "EMPORIUM_TEST_PG is not set: run through `make test`");
  return dsn;
}

/// A fresh database on the test server, migrated; returns its URL.
inline std::string fresh_database(const std::string& prefix = "pgtest_") {
  auto base = server_dsn();
  auto name = prefix + protocols::new_id("").substr(0, 12);
  pqxx::connection c{base};
  pqxx::nontransaction{c}.exec("CREATE DATABASE " + name);
  auto dsn = base.substr(0, base.rfind('/') + 1) + name;
  REQUIRE(persistence::migrate(dsn));
  return dsn;
}

/// Asks `h` from a scoped actor and waits (10 s) for its answer or error.
template <class T, class Handle, class Msg>
caf::expected<T> ask(caf::scoped_actor& self, const Handle& h, Msg msg) {
  caf::expected<T> out{caf::make_error(errc::internal)};
  self->request(caf::actor_cast<caf::actor>(h), std::chrono::seconds{10}, std::move(msg))
    .receive([&](T& x) { out = std::move(x); }, [&](caf::error& e) { out = std::move(e); });
  return out;
}

struct pg_system_config : caf::actor_system_config {
  pg_system_config() {
    add_message_types<caf::id_block::emporium>();
    set("logger.verbosity", caf::atom("quiet"));
  }
};

} // namespace emporium::test
