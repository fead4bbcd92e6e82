#pragma once

#include "protocols/type_ids.hpp"

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include <functional>
#include <string_view>

/// Typed actor interfaces. Entity actors (SKU groups, later carts and orders)
/// are reached only through the router; services (store) by handle.
namespace emporium::protocols {

/// One SKU x warehouse pair. Every mutating command answers once durable.
using stock_actor = caf::typed_actor<
  caf::replies_to<push_stock_level>::with<stock_result>,
  caf::replies_to<adjust_stock>::with<stock_result>,
  caf::replies_to<reserve_stock>::with<stock_result>,
  caf::replies_to<release_stock>::with<stock_result>,
  caf::replies_to<commit_stock>::with<stock_result>,
  caf::replies_to<fulfil_stock>::with<stock_result>,
  caf::replies_to<extend_hold>::with<stock_result>,
  caf::replies_to<get_stock_level>::with<stock_level>,
  caf::replies_to<get_hold>::with<hold_view>,
  caf::replies_to<passivate_atom>::with<bool>, ///< true: idle, may stop
  caf::reacts_to<expire_atom>>;

/// The actor serving an entity key ("cart:ID", "product:SKU", ...): send it
/// (route_atom, key, message) and the entity answers. Entities reach each other
/// only through this (the router's shard_for), never by keeping handles.
using entity_resolver = std::function<caf::actor(std::string_view key)>;

/// The PostgreSQL store (a pool of detached workers behind one handle).
using store_actor = caf::typed_actor<
  caf::replies_to<stock_batch>::with<ok_atom>,
  caf::replies_to<load_sku>::with<sku_snapshot>,
  caf::replies_to<locate_reservation>::with<reservation_rows>,
  caf::replies_to<entity_write>::with<ok_atom>,
  caf::replies_to<load_entity>::with<entity_record>,
  caf::replies_to<load_events>::with<std::vector<domain_event>>,
  caf::replies_to<find_unsettled>::with<entity_ids>,
  caf::replies_to<ping_atom>::with<ok_atom>>; ///< ok when PostgreSQL answers

} // namespace emporium::protocols
