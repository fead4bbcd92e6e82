#pragma once

#include <caf/expected.hpp>

#include <string>
#include <vector>

namespace emporium::persistence {

/// One versioned schema step from sql/NNN_name.sql.
struct migration {
  int version;
  const char* name;
  const char* sql;
};

/// All migrations, ordered by version (generated from sql/ at build time).
const std::vector<migration>& migrations();

/// Applies every migration not yet recorded in schema_migrations, each in its
/// own transaction, under an advisory lock so concurrent nodes do not race.
/// Returns how many were applied (0: already up to date). Blocking.
caf::expected<int> migrate(const std::string& dsn);

} // namespace emporium::persistence
