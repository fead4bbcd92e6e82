#pragma once

#include "protocols/errc.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// The route table: every route the node serves, its method, its pattern, who
/// may call it and which handler answers. A route cannot be added without an
/// access rule (the constructor takes one). Beast-free: unit-tested alone.
namespace emporium::gateway {

class exchange;
using handler = void (*)(exchange&);

enum class method : uint8_t { get, put, post, delete_, other };

/// Who may call a route; checked before its handler runs.
enum class access : uint8_t {
  anyone,           ///< no token needed (a token that is sent is ignored)
  optional_token,   ///< no token needed; one that is sent must be valid (storefront WebSocket)
  signed_in,        ///< any valid token; the entity decides ownership
  customer_or_ops,  ///< a customer token, or ops
  warehouse_or_ops, ///< a warehouse token listing the path's {warehouse}, or ops
  ops,              ///< ops only
};

/// One route. Pattern segments in braces are parameters; the id parameters
/// {warehouse} and {sku} answer 400 naming the field when malformed, the
/// others ({cart_id}, {order_id}, {reservation_id}) 404 (no such thing).
struct route {
  route(method m, std::string_view p, access a, handler h);
  method verb;
  std::string_view pattern;
  access rule;
  handler run;
  std::vector<std::string_view> parts; ///< the pattern's segments, split once
};

/// Most segments a path of ours has; a longer one is 404 without more work.
constexpr size_t max_path_segments = 8;

/// The contract's routes (gateway/handlers.cpp binds them to their handlers).
const std::vector<route>& route_table();

/// A matched request: the route and its percent-decoded parameters, or why
/// none matched (not_found; method_not_allowed with the allowed methods; a
/// malformed id parameter, invalid_field naming it).
struct route_match {
  const route* found = nullptr;
  errc error = errc::not_found;
  std::string field;            ///< a malformed {warehouse} or {sku}: "warehouse" / "sku"
  std::string message;          ///< what the error says
  std::string_view pattern;     ///< the pattern matched, also on 405 (metrics label)
  std::string allow;            ///< 405: "GET, PUT"
  std::array<std::pair<std::string_view, std::string>, 3> params{};
  size_t param_count = 0;

  /// The decoded value of parameter `name` (empty if the route has none).
  const std::string& param(std::string_view name) const;
};

/// Matches `target` (path and optional query) against `table`.
route_match match_route(const std::vector<route>& table, method m, std::string_view target);

/// "GET", "PUT", ... for logs and metrics.
const char* method_name(method m) noexcept;

/// "anyone", "signed_in", ... (`emporium routes`, the auth matrix test).
const char* access_name(access a) noexcept;

/// The raw value of query parameter `name` in `target`, if present.
std::optional<std::string_view> query_param(std::string_view target, std::string_view name);

/// %XX-decodes one path segment; false when an escape is malformed.
bool percent_decode(std::string_view in, std::string& out);

} // namespace emporium::gateway
