#pragma once

#include <caf/expected.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace emporium::gateway {

/// Who is calling, from a verified token.
struct principal {
  std::string sub;
  std::string role; ///< "customer", "warehouse" or "ops"
  std::vector<std::string> warehouses; ///< the `wh` claim of warehouse tokens
  int64_t exp = 0;

  bool is(std::string_view r) const noexcept { return role == r; }
  bool may_push_for(std::string_view wh) const noexcept;
};

/// Verifies an HS256 JWT: header alg must be exactly HS256 (so `none` and
/// every other alg are refused), signature compared in constant time, `exp`
/// in the future, `sub` and a known `role` present. Any failure is
/// errc::unauthenticated with a reason.
caf::expected<principal> verify_jwt(std::string_view token, std::string_view secret,
                                    int64_t now_s);

/// Signs an HS256 JWT for `p` (exp = now + ttl).
std::string sign_jwt(const principal& p, std::string_view secret, int64_t now_s,
                     int64_t ttl_s);

} // namespace emporium::gateway
