#pragma once

#include "protocols/ids.hpp"
#include "protocols/type_ids.hpp"
#include "protocols/store.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <string>

namespace emporium::actors {

/// How long an entity waits for a read (its recovery, another entity's answer).
/// Writes wait without a limit: the store's statement_timeout bounds them.
constexpr auto lookup_timeout = std::chrono::seconds{10};

/// What an event is about and who caused it: the parts of the envelope that
/// every event of one command shares.
struct event_origin {
  std::string user_id;
  std::string correlation_id;
  std::string node;
};

/// One event of `after`'s entity at `after.version` (the caller bumped it).
inline protocols::domain_event entity_event(const protocols::entity_record& after,
                                            const char* type, const boost::json::object& data,
                                            const event_origin& origin) {
  return {protocols::new_uuid(), type, after.aggregate_id, after.aggregate_type, after.version,
          after.updated_at_ms, boost::json::serialize(data), origin.correlation_id, "",
          origin.user_id, origin.node};
}

/// An entity that found nothing stored answers not_found and asks `home` (the
/// router hosting it) once to stop it; the router does so only when no
/// request for it is under way. Quitting by itself would drop a request that
/// is already on its way (a create queued behind a read of an unknown id).
inline void leave_when_unused(caf::event_based_actor* self, const caf::actor& home, bool& asked) {
  if (!home || asked)
    return;
  asked = true;
  self->send(home, protocols::passivate_atom_v);
}

/// The passivate_atom answer of an entity that awaits every write: nothing
/// is under way when the question is handled, so it agrees and stops.
inline caf::typed_response_promise<bool> agree_to_passivate(caf::event_based_actor* self) {
  auto rp = self->make_response_promise<bool>();
  rp.deliver(true);
  self->quit();
  return rp;
}

} // namespace emporium::actors
