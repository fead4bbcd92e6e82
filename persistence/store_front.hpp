#pragma once

#include "protocols/actors.hpp"

#include <caf/fwd.hpp>

#include <cstddef>
#include <vector>

namespace emporium::persistence {

struct store_front_config {
  /// Parts (one entity's write each) per transaction at most.
  size_t max_group = 256;
  /// Parts waiting for one worker at most; beyond it a write is answered
  /// `unavailable` at once, with nothing written (every queue is bounded).
  size_t max_pending = 8192;
};

/// The store's one handle, on the scheduler (it only queues and forwards).
/// Group commit across entities: the writes of one entity (a pair, a cart, an
/// order) always go to the same worker, so they stay in order on one
/// connection; whatever arrives for a worker while it commits a group waits
/// and goes as its next group, one transaction for many entities. Each part is
/// answered with its own outcome once its group's transaction has ended, and
/// never before: a group in flight has no timeout (PostgreSQL's
/// statement_timeout bounds it; a worker that dies answers its group
/// `unavailable`). Reads go round robin.
/// `workers` answer write_group with group_outcome, and the store's reads.
protocols::store_actor spawn_store_front(caf::actor_system& sys, std::vector<caf::actor> workers,
                                         store_front_config cfg = {});

} // namespace emporium::persistence
