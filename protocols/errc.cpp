#include "protocols/errc.hpp"


namespace emporium {

std::string_view to_string(errc x) noexcept {
  switch (x) {
    case errc::bad_json: return "bad_json";
    case errc::invalid_field: return "invalid_field";
    case errc::unauthenticated: return "unauthenticated";
    case errc::forbidden: return "forbidden";
    case errc::not_found: return "not_found";
    case errc::method_not_allowed: return "method_not_allowed";
    case errc::insufficient_stock: return "insufficient_stock";
    case errc::conflict: return "conflict";
    case errc::invalid_state: return "invalid_state";
    case errc::too_large: return "too_large";
    case errc::rate_limited: return "rate_limited";
    case errc::unavailable: return "unavailable";
    case errc::internal: return "internal";
    case errc::fenced: return "unavailable";
    case errc::outcome_unknown: return "unavailable";
  }
  return "internal";
}

errc to_errc(const caf::error& e) noexcept {
  if (e.category() == caf::atom("emporium"))
    return static_cast<errc>(e.code());
  // CAF's own errors (request timeout, receiver down, broken promise, lost
  // peer) all mean the owner of the answer is not there now: retry later.
  if (e.category() == caf::atom("system"))
    return errc::unavailable;
  return errc::internal;
}

} // namespace emporium
