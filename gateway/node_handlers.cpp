#include "gateway/handlers.hpp"

#include "cluster/shard_table.hpp"
#include "gateway/server.hpp"
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

void inject_failure(exchange& x) {
  auto& hook = x.config().failure_hook;
  if (!hook)
    return x.fail(errc::not_found, "no route for POST /v1/debug/crash (the failure hook is off)");
  auto b = x.read_body({"kind", "id"});
  if (!b)
    return;
  auto kind = b->string("kind", true, false, 32);
  auto id = b->string("id", false, true);
  if (b->error)
    return x.fail(*b->error);
  if (!hook(*kind, id.value_or("")))
    return x.fail(field_error{errc::invalid_field, "kind", "no such kind of actor, or no id for it"});
  x.respond(202, {{"kind", *kind}, {"status", "crashing"}});
}

} // namespace emporium::gateway::handlers
