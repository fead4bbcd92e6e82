#pragma once

#include "protocols/store.hpp"

#include <cstdint>
#include <string>
#include <string_view>

/// The contract's event envelope as JSON text: one writer for the Kafka relay
/// and the HTTP event routes, so both say exactly the same.
namespace emporium::protocols {

/// "2026-11-21T10:00:00.123Z" (UTC, milliseconds).
std::string rfc3339(int64_t ms);

/// `s` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view s);

/// {"eventId","eventType","aggregateId","aggregateType","eventVersion",
/// "eventTime","data","metadata":{"correlationId","causationId","userId","node"}}.
/// `data_json` is inserted as it is (it is stored as jsonb, so it is JSON).
std::string envelope_json(const domain_event& e);

/// The Kafka topic of an aggregate type: stock and product → inventory, cart →
/// carts, order → orders, anything else → analytics.
std::string_view topic_for(std::string_view aggregate_type) noexcept;

} // namespace emporium::protocols
