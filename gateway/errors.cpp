#include "gateway/errors.hpp"

#include <boost/json/serialize.hpp>

namespace emporium::gateway {

unsigned http_status(errc code) noexcept {
  switch (code) {
    case errc::bad_json:
    case errc::invalid_field: return 400;
    case errc::unauthenticated: return 401;
    case errc::forbidden: return 403;
    case errc::not_found: return 404;
    case errc::method_not_allowed: return 405;
    case errc::insufficient_stock:
    case errc::conflict:
    case errc::invalid_state: return 409;
    case errc::too_large: return 413;
    case errc::rate_limited: return 429;
    case errc::unavailable:
    case errc::fenced:
    case errc::outcome_unknown: return 503;
    case errc::internal: return 500;
  }
  return 500;
}

error_reply to_reply(errc code, std::string message, json::object extra) {
  extra["error"] = to_string(code);
  extra["message"] = std::move(message);
  unsigned retry = code == errc::unavailable || code == errc::fenced
                       || code == errc::outcome_unknown || code == errc::rate_limited
                     ? 1
                     : 0;
  return {code, http_status(code), std::move(extra), retry};
}

error_reply to_reply(const field_error& e) {
  json::object extra;
  if (!e.field.empty())
    extra["field"] = e.field;
  return to_reply(e.code, e.message, std::move(extra));
}

error_reply to_reply(const caf::error& err) {
  auto code = to_errc(err);
  json::object extra;
  std::string message{to_string(code)};
  auto& ctx = err.context();
  if (code == errc::insufficient_stock && ctx.match_element<int64_t>(0)) {
    extra["available"] = ctx.get_as<int64_t>(0);
    message = "not enough stock available";
  } else if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
    message = ctx.get_as<std::string>(0);
  } else if (ctx.size() == 2 && ctx.match_elements<std::string, std::string>()) {
    extra["field"] = ctx.get_as<std::string>(0); // (field, message), e.g. invalid_field
    message = ctx.get_as<std::string>(1);
  } else if (code == errc::unavailable) {
    message = "a dependency is unavailable, retry later";
  }
  return to_reply(code, std::move(message), std::move(extra));
}

std::string error_frame(const error_reply& r, json::object extra) {
  extra["type"] = "error";
  for (auto& kv : r.body)
    extra[kv.key()] = kv.value();
  return json::serialize(extra);
}

} // namespace emporium::gateway
