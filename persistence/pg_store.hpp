#pragma once

#include "protocols/actors.hpp"

#include <caf/fwd.hpp>

#include <string>

namespace emporium::persistence {

struct pg_store_config {
  std::string dsn;
  size_t connections = 4; ///< detached workers, one connection each
};

/// Spawns the PostgreSQL store: `connections` detached workers (libpqxx blocks,
/// so it never runs on the scheduler) behind one dispatching handle. A pair's
/// batches always use the same worker, so pipelined batches stay in order;
/// reads go round robin. A lost connection answers `unavailable` and is
/// reopened on the next request.
protocols::store_actor spawn_pg_store(caf::actor_system& sys, const pg_store_config& cfg);

} // namespace emporium::persistence
