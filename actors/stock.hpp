#pragma once

#include "protocols/actors.hpp"
#include "cluster/live_feed.hpp"
#include "cluster/stock_view.hpp"

#include <caf/actor_clock.hpp>
#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace emporium::actors {

struct stock_config {
  std::string node = "local"; ///< written into event metadata
  /// Where the pair publishes its durable level for reads (none in most unit tests).
  std::shared_ptr<cluster::stock_view> view;
  /// Where the pair reports each durable level to WebSocket subscribers (optional).
  std::shared_ptr<cluster::live_feed> feed;
  /// The shard epoch its writes are made under (the SKU's shard; fencing).
  protocols::fence under;
};

/// One SKU x warehouse pair, started from its durable snapshot.
///
/// Group commit: while one batch is being written the actor keeps validating
/// commands against durable + pending state and queues them; when the write
/// lands it answers that batch and writes the next one as one transaction. A
/// failed write answers all waiting requests with the error and drops the
/// pending changes (a version conflict stops the actor so it is recovered from
/// PostgreSQL). A write has no actor-side timeout: the store bounds its
/// statements (statement_timeout) and always answers with the definite
/// outcome, so the actor never disagrees with PostgreSQL. Holds expire by the
/// actor's own timer, also those found already expired at recovery. Time
/// comes from the actor clock.
protocols::stock_actor spawn_stock(caf::actor_system& sys, protocols::pair_snapshot snapshot,
                                   protocols::store_actor store, stock_config cfg = {});

/// The same, linked to `parent` (the SKU actor owns its pairs).
protocols::stock_actor spawn_linked_stock(caf::local_actor* parent,
                                          protocols::pair_snapshot snapshot,
                                          protocols::store_actor store, stock_config cfg);

/// Wall-clock milliseconds as seen through an actor's clock: the system time
/// at `base_ms` plus how far the actor clock moved since `base`. Tests move it
/// with the deterministic scheduler.
struct actor_wall_clock {
  int64_t base_ms = 0;
  caf::actor_clock::time_point base;
  explicit actor_wall_clock(caf::local_actor* self);
  int64_t now_ms(caf::local_actor* self) const;
};

} // namespace emporium::actors
