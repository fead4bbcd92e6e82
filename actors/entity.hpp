#pragma once

#include "protocols/errc.hpp"
#include "protocols/ids.hpp"
#include "protocols/type_ids.hpp"
#include "protocols/store.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace emporium::actors {

/// How long an entity waits for a read (its recovery, another entity's answer).
/// Writes wait without a limit: the store's statement_timeout bounds them.
constexpr auto lookup_timeout = std::chrono::seconds{10};

// -- reading stored JSON (entity rows, event data) without throwing ------------------

/// The object in `text`, or nullopt when it is not a JSON object.
inline std::optional<boost::json::object> stored_object(std::string_view text) {
  boost::json::error_code ec;
  auto v = boost::json::parse(text.empty() ? std::string_view{"{}"} : text, ec);
  if (ec || !v.is_object())
    return std::nullopt;
  return std::move(v.as_object());
}

/// A string field, "" when absent or not a string.
inline std::string text(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string{v->as_string()} : std::string{};
}

/// An integer field, 0 when absent or not an int64.
inline int64_t number(const boost::json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v != nullptr && v->is_int64() ? v->as_int64() : 0;
}

/// An array field, empty when absent or not an array.
inline const boost::json::array& list(const boost::json::object& o, const char* key) {
  static const boost::json::array empty;
  auto* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? v->as_array() : empty;
}

/// The error of an entity whose stored row cannot be read: logged by the
/// caller as an error (a human must act), answered as unavailable.
inline caf::error unreadable_state() {
  return caf::make_error(errc::unavailable, std::string{"stored state is unreadable"});
}

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
template <class Self>
void leave_when_unused(Self* self, const caf::actor& home, bool& asked) {
  if (!home || asked)
    return;
  asked = true;
  caf::anon_send(home, protocols::passivate_atom_v, self->address());
}

/// Whether a failed write means another writer (a version conflict) or
/// another owner (a fenced write): the entity stops and recovers from
/// PostgreSQL, wherever its shard lives, on next use.
inline bool stops_entity(const caf::error& err) {
  auto e = to_errc(err);
  return e == errc::conflict || e == errc::fenced;
}

/// The passivate_atom answer of an entity that awaits every write: nothing
/// is under way when the question is handled, so it agrees and stops.
template <class Self>
caf::typed_response_promise<bool> agree_to_passivate(Self* self) {
  auto rp = self->template make_response_promise<bool>();
  rp.deliver(true);
  self->quit();
  return rp;
}

} // namespace emporium::actors
