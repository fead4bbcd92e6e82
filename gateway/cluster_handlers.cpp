#include "gateway/handlers.hpp"

#include "cluster/shard_table.hpp"
#include "gateway/routes.hpp"
#include "protocols/ids.hpp"

#include <map>

namespace emporium::gateway::handlers {

namespace p = protocols;

namespace {

/// The status ops see: a member whose heartbeat is older than a lease is
/// `down` unless it left.
std::string shown_status(const p::member& m) {
  if (m.status == "left" || m.alive)
    return m.status;
  return "down";
}

const cluster::shard_table* cluster_or_404(exchange& x) {
  auto* t = x.shards();
  if (!t)
    x.fail(errc::not_found, "this node runs without a cluster");
  return t;
}

} // namespace

void get_cluster(exchange& x) {
  auto* t = cluster_or_404(x);
  if (!t)
    return;
  auto snap = t->current_snapshot();
  std::map<std::string, int64_t> owned;
  for (auto& l : snap.state.leases)
    if (l.live && !l.node.empty())
      ++owned[l.node];
  json::array nodes;
  for (auto& m : snap.state.members)
    nodes.push_back(json::object{{"id", m.id},
                                 {"address", m.http_address},
                                 {"cluster_address", m.cluster_address},
                                 {"status", m.id == snap.self ? snap.status : shown_status(m)},
                                 {"shards", owned[m.id]},
                                 {"actors", m.actors}});
  x.respond(200, {{"self", snap.self}, {"shards", t->shards()}, {"nodes", std::move(nodes)}});
}

void get_owner(exchange& x) {
  auto* t = cluster_or_404(x);
  if (!t)
    return;
  std::optional<p::entity_key> key;
  for (auto [name, kind] : {std::pair{"sku", p::entity_kind::sku}, std::pair{"cart", p::entity_kind::cart},
                            std::pair{"order", p::entity_kind::order}})
    if (auto v = query_param(x.target(), name)) {
      if (key)
        return x.fail(errc::invalid_field, "give one of sku, cart or order");
      if (!p::valid_id(*v))
        return x.fail(field_error{errc::invalid_field, name, std::string{name} + " is not a valid id"});
      key = p::entity_key{kind, std::string{*v}};
    }
  if (!key)
    return x.fail(errc::invalid_field, "give one of sku=, cart= or order=");
  auto shard = t->shard_of(*key);
  auto snap = t->current_snapshot();
  json::value node = nullptr;
  int64_t epoch = 0;
  for (auto& l : snap.state.leases)
    if (l.shard == shard) {
      epoch = l.epoch;
      if (l.live && !l.node.empty())
        node = json::string{l.node};
    }
  x.respond(200, {{"shard", shard}, {"node", node}, {"epoch", epoch}});
}

void drain_node(exchange& x) {
  if (!cluster_or_404(x))
    return;
  if (!x.body_empty_or_object())
    return;
  auto id = x.param("node_id");
  x.ask<p::ok_atom>(x.membership(), caf::make_message(p::request_drain{id}),
                    [id](exchange& x, caf::expected<p::ok_atom> r) {
    if (!r)
      return x.fail(r.error());
    x.respond(202, {{"node", id}, {"status", "draining"}});
  });
}

} // namespace emporium::gateway::handlers
