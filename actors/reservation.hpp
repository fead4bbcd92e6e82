#pragma once

#include "protocols/actors.hpp"

#include <caf/fwd.hpp>

#include <string>

namespace emporium::actors {

/// Spawns the entity actor of one reservation id ("reservation:ID"), which
/// finds the reservation for GET and DELETE /v1/reservations/{id}: it asks
/// the store which SKU holds it (every request: the status moves on), checks
/// the caller is its owner or ops (forbidden otherwise), answers final ones
/// (released, expired) from the rows and asks the SKU, through the seam,
/// for live ones. Holds no state; agrees to passivate when idle.
/// - find_reservation -> reservation (not_found when unknown);
/// - drop_reservation -> reservation: released (not_found when no longer
///   held, invalid_state when committed).
caf::actor spawn_reservation(caf::actor_system& sys, std::string reservation_id,
                             protocols::store_actor store, protocols::entity_resolver resolve,
                             caf::actor home = {});

} // namespace emporium::actors
