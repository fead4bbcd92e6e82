#pragma once

#include "actors/stock.hpp"

#include <caf/fwd.hpp>

#include <string>

namespace emporium::actors {

/// Spawns the entity actor of one SKU: it recovers the SKU's pairs from the
/// store (requests wait meanwhile), owns one linked stock actor per
/// warehouse, and answers (the messages of protocols::sku_actor; its behavior
/// is still dynamically typed — a typed one crashed in the deterministic tests
/// with a double free in a gather callback, not yet understood):
/// - at_pair<Cmd>{warehouse, cmd}: cmd is delegated to the pair of warehouse;
///   push and adjust create a pair that does not exist yet;
/// - get_sku_stock -> sku_stock (404 when the SKU has no pair);
/// - reserve_any -> reservation: all or nothing across warehouses, largest
///   availability first (fewest splits); parts already held are released when
///   another part fails;
/// - get_reservation / release_reservation -> reservation;
/// - passivate_atom -> bool: true when every pair is idle (then it stops).
caf::actor spawn_sku(caf::actor_system& sys, std::string sku, protocols::store_actor store,
                     stock_config cfg);

} // namespace emporium::actors
