#include "gateway/auth.hpp"

#include "protocols/errc.hpp"

#include <unordered_map>

namespace emporium::gateway {

namespace {

bool starts_with_bearer(std::string_view h) {
  static constexpr std::string_view prefix = "bearer ";
  if (h.size() <= prefix.size())
    return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (static_cast<char>(std::tolower(static_cast<unsigned char>(h[i]))) != prefix[i])
      return false;
  return true;
}

/// Verifies the token; verified tokens are cached per thread, keyed by the
/// whole token (signature included), so only a byte-identical token hits;
/// exp is checked on every use. Saves an HMAC and two JSON parses a request.
caf::expected<principal> verify(std::string_view token, std::string_view secret, int64_t now) {
  thread_local std::unordered_map<std::string, principal> verified;
  if (auto i = verified.find(std::string{token}); i != verified.end()) {
    if (i->second.exp > now)
      return i->second;
    verified.erase(i);
  }
  auto p = verify_jwt(token, secret, now);
  if (!p)
    return p;
  if (verified.size() >= 4096) // bounded: start over rather than track age
    verified.clear();
  verified.emplace(std::string{token}, *p);
  return p;
}

} // namespace

caf::expected<std::optional<principal>> admit(access rule, std::string_view authorization,
                                              std::string_view warehouse, std::string_view secret,
                                              int64_t now_s) {
  using result = std::optional<principal>;
  if (rule == access::anyone || (rule == access::optional_token && authorization.empty()))
    return result{};
  if (authorization.empty())
    return caf::make_error(errc::unauthenticated, std::string{"missing bearer token"});
  if (!starts_with_bearer(authorization))
    return caf::make_error(errc::unauthenticated, std::string{"malformed Authorization header"});
  auto p = verify(authorization.substr(7), secret, now_s);
  if (!p)
    return p.error();
  auto refuse = [&p] {
    return caf::make_error(errc::forbidden, "role " + p->role + " may not do this");
  };
  switch (rule) {
    case access::anyone:
    case access::optional_token:
    case access::signed_in:
      break;
    case access::customer_or_ops:
      if (!p->is("customer") && !p->is("ops"))
        return refuse();
      break;
    case access::warehouse_or_ops:
      if (!p->is("warehouse") && !p->is("ops"))
        return refuse();
      if (!p->may_push_for(warehouse))
        return caf::make_error(errc::forbidden,
                               "token is not for warehouse " + std::string{warehouse});
      break;
    case access::ops:
      if (!p->is("ops"))
        return refuse();
      break;
  }
  return result{std::move(*p)};
}

std::optional<principal> bearer_principal(std::string_view authorization, std::string_view secret,
                                          int64_t now_s) {
  if (!starts_with_bearer(authorization))
    return std::nullopt;
  auto p = verify(authorization.substr(7), secret, now_s);
  if (!p)
    return std::nullopt;
  return std::move(*p);
}

std::string query_bearer(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos)
    return {};
  auto query = target.substr(q + 1);
  for (size_t i = 0; i < query.size();) {
    auto amp = query.find('&', i);
    auto part = query.substr(i, amp == std::string_view::npos ? query.npos : amp - i);
    if (part.rfind("access_token=", 0) == 0)
      return "Bearer " + std::string{part.substr(13)};
    if (amp == std::string_view::npos)
      break;
    i = amp + 1;
  }
  return {};
}

} // namespace emporium::gateway
