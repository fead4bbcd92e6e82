#pragma once

#include "gateway/jwt.hpp"
#include "gateway/routes.hpp"

#include <caf/expected.hpp>

#include <optional>
#include <string_view>

/// Who may call what: the bearer token verified (HS256, gateway/jwt) and
/// checked against a route's access rule. Beast-free.
namespace emporium::gateway {

/// The caller of a route of `rule`, from the Authorization header value
/// ("Bearer <JWT>"): a principal when a valid token came, none on a public
/// route without one. Refusals: unauthenticated (401: missing, malformed,
/// expired, badly signed) or forbidden (403: wrong role, or a warehouse token
/// not listing `warehouse`).
caf::expected<std::optional<principal>> admit(access rule, std::string_view authorization,
                                              std::string_view warehouse, std::string_view secret,
                                              int64_t now_s);

/// The principal of a valid bearer token in `authorization`, none if there is
/// no token or it does not verify (which token names the client of a public
/// route, for its rate limit).
std::optional<principal> bearer_principal(std::string_view authorization, std::string_view secret,
                                          int64_t now_s);

/// The `access_token` query parameter of `target` as an Authorization value
/// ("Bearer ..."), for WebSocket upgrades (a browser cannot set headers there);
/// empty if there is none.
std::string query_bearer(std::string_view target);

} // namespace emporium::gateway
