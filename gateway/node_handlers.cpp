#include "gateway/handlers.hpp"

#include "cluster/shard_table.hpp"
#include "protocols/metrics.hpp"

namespace emporium::gateway::handlers {

using namespace protocols;

void healthz(exchange& x) {
  x.respond(200, {{"status", "ok"}});
}

void readyz(exchange& x) {
  if (auto* shards = x.shards(); shards && !shards->ready)
    return x.fail(errc::unavailable, "this node is not up: it has not joined, holds not all of "
                                     "its shards, or is draining");
  x.ask<ok_atom>(x.health(), caf::make_message(ping_atom_v), [](exchange& x, caf::expected<ok_atom> r) {
    if (r)
      x.respond(200, {{"status", "ready"}});
    else
      x.fail(errc::unavailable, "PostgreSQL is not reachable");
  });
}

void metrics(exchange& x) {
  x.respond_text(200, metrics::serialize(), "text/plain; version=0.0.4");
}

void storefront_ws(exchange& x) {
  x.upgrade_storefront();
}

void warehouse_ws(exchange& x) {
  x.upgrade_warehouse(x.param("warehouse"));
}

} // namespace emporium::gateway::handlers
