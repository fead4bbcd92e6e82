#pragma once

#include <string>
#include <string_view>

namespace emporium::protocols {

/// A random RFC 4122 version-4 UUID, e.g. for event ids.
std::string new_uuid();

/// A unique id with a prefix, e.g. new_id("rsv_") -> "rsv_019a8f...", 24 hex digits:
/// 48 bits of wall-clock milliseconds, then 48 random bits.
std::string new_id(std::string_view prefix);

/// prefix + 24 hex digits of SHA-256(sub, key): the id of what a client
/// creates with an Idempotency-Key, stable across retries and nodes.
std::string derived_id(std::string_view prefix, std::string_view sub, std::string_view key);

/// True if `id` matches the contract's ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$.
bool valid_id(std::string_view id) noexcept;

} // namespace emporium::protocols
