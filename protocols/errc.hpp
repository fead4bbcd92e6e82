#pragma once

#include <caf/make_message.hpp> // must precede error.hpp for CAF_ERROR_CODE_ENUM
#include <caf/error.hpp>

#include <cstdint>
#include <string_view>

namespace emporium {

/// The one error enum of the project. Names are the contract's error codes, so
/// the gateway maps errc -> HTTP status in one table.
enum class errc : uint8_t {
  bad_json = 1,
  invalid_field,
  unauthenticated,
  forbidden,
  not_found,
  method_not_allowed,
  insufficient_stock, ///< context: (int64_t available)
  conflict,
  invalid_state,
  too_large,
  rate_limited,
  unavailable,
  internal,
  /// A write refused because its shard's lease moved on (fencing). The client
  /// sees 503 `unavailable`; the entity stops, since another node may own it.
  fenced,
  /// The actor holding a request went down after passing it on: whether it
  /// took effect is not known here. A read is answered 503 `unavailable`; a
  /// write is not answered at all (its connection is closed, as when a node
  /// dies: the client retries with its Idempotency-Key or looks).
  outcome_unknown,
};

/// The contract's code string, e.g. "insufficient_stock".
std::string_view to_string(errc x) noexcept;

/// Maps any caf::error to our errc: ours pass through, CAF's own (timeouts,
/// receiver down) become `unavailable`, anything else `internal`.
errc to_errc(const caf::error& e) noexcept;

} // namespace emporium

CAF_ERROR_CODE_ENUM(emporium::errc, "emporium")
