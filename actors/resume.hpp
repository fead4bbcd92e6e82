#pragma once

#include "protocols/actors.hpp"
#include "protocols/entity.hpp"

#include <caf/fwd.hpp>

#include <functional>

namespace emporium::actors {

/// Which keys a node resumes (those of the shards it just acquired).
using key_filter = std::function<bool(const protocols::entity_key&)>;

/// Wakes the entities whose work lives in memory and was cut short (a crash, a
/// stop, a handoff), of the keys `mine` accepts (null: all), through `resolve`,
/// so each goes on wherever it lives now:
/// - orders whose saga or compensation is open get resume_atom (each resumes
///   from its last event);
/// - SKUs whose pairs hold stock for live reservations are loaded (their
///   recovery arms the expiry timers and releases what expired meanwhile).
/// Does not block: a short-lived actor asks the store and logs the counts (or
/// the error).
void resume_unsettled(caf::actor_system& sys, protocols::store_actor store,
                      protocols::entity_resolver resolve, key_filter mine);

} // namespace emporium::actors
