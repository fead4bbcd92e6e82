#include "gateway/routes.hpp"

#include "protocols/ids.hpp"

namespace emporium::gateway {

namespace {

/// Splits the path of `target` (the query cut off) into at most `N`
/// segments; false if there are more.
template <size_t N>
bool split(std::string_view target, std::array<std::string_view, N>& out, size_t& n) {
  if (auto q = target.find('?'); q != std::string_view::npos)
    target = target.substr(0, q);
  n = 0;
  size_t i = 0;
  while (i < target.size()) {
    if (target[i] == '/') {
      ++i;
      continue;
    }
    auto j = target.find('/', i);
    if (j == std::string_view::npos)
      j = target.size();
    if (n == N)
      return false;
    out[n++] = target.substr(i, j - i);
    i = j;
  }
  return true;
}

int hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

bool is_param(std::string_view part) {
  return part.size() > 2 && part.front() == '{' && part.back() == '}';
}

/// Whether the decoded path fits the route's segments (no allocation).
bool fits(const route& r, const std::array<std::string_view, max_path_segments>& path, size_t n) {
  if (r.parts.size() != n)
    return false;
  for (size_t i = 0; i < n; ++i)
    if (!is_param(r.parts[i]) && r.parts[i] != path[i])
      return false;
  return true;
}

} // namespace

route::route(method m, std::string_view p, access a, handler h)
  : verb(m), pattern(p), rule(a), run(h) {
  std::array<std::string_view, max_path_segments> segs;
  size_t n = 0;
  split(p, segs, n);
  parts.assign(segs.begin(), segs.begin() + static_cast<std::ptrdiff_t>(n));
}

const std::string& route_match::param(std::string_view name) const {
  static const std::string none;
  for (size_t i = 0; i < param_count; ++i)
    if (params[i].first == name)
      return params[i].second;
  return none;
}

const char* method_name(method m) noexcept {
  switch (m) {
    case method::get: return "GET";
    case method::put: return "PUT";
    case method::post: return "POST";
    case method::delete_: return "DELETE";
    case method::other: return "OTHER";
  }
  return "OTHER";
}

const char* access_name(access a) noexcept {
  switch (a) {
    case access::anyone: return "anyone";
    case access::optional_token: return "optional_token";
    case access::signed_in: return "signed_in";
    case access::customer_or_ops: return "customer_or_ops";
    case access::warehouse_or_ops: return "warehouse_or_ops";
    case access::ops: return "ops";
  }
  return "ops";
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size())
      return false;
    int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0)
      return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

route_match match_route(const std::vector<route>& table, method m, std::string_view target) {
  route_match out;
  out.message = "no such route";
  std::array<std::string_view, max_path_segments> raw;
  size_t n = 0;
  if (!split(target, raw, n))
    return out;
  // Decoded segments: most have no escape and are used as they are.
  std::array<std::string, max_path_segments> decoded;
  std::array<std::string_view, max_path_segments> path;
  for (size_t i = 0; i < n; ++i) {
    if (raw[i].find('%') == std::string_view::npos) {
      path[i] = raw[i];
      continue;
    }
    if (!percent_decode(raw[i], decoded[i]))
      return out; // not a path of ours: 404
    path[i] = decoded[i];
  }
  const route* first = nullptr; // the first pattern that fits the path
  for (auto& r : table) {
    if ((first != nullptr && r.pattern != first->pattern) || !fits(r, path, n))
      continue;
    if (first == nullptr)
      first = &r;
    if (r.verb == m) {
      out.found = &r;
      break;
    }
    out.allow += out.allow.empty() ? "" : ", ";
    out.allow += method_name(r.verb);
  }
  if (first == nullptr)
    return out;
  out.pattern = first->pattern;
  for (size_t i = 0; i < n; ++i)
    if (is_param(first->parts[i]) && out.param_count < out.params.size())
      out.params[out.param_count++] = {first->parts[i].substr(1, first->parts[i].size() - 2),
                                       std::string{path[i]}};
  if (out.found == nullptr) {
    out.error = errc::method_not_allowed;
    out.message = "method not allowed on this route";
    return out;
  }
  out.allow.clear();
  out.message.clear();
  for (size_t i = 0; i < out.param_count; ++i) {
    auto& [name, value] = out.params[i];
    if (protocols::valid_id(value))
      continue;
    out.found = nullptr;
    if (name == "warehouse" || name == "sku") {
      out.error = errc::invalid_field;
      out.field = std::string{name};
      out.message = "path id is not a valid id";
    } else { // an id that cannot exist: "cart_id" -> "unknown cart"
      out.error = errc::not_found;
      out.message = "unknown " + std::string{name.substr(0, name.rfind("_id"))};
    }
    return out;
  }
  return out;
}

std::optional<std::string_view> query_param(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos)
    return std::nullopt;
  auto rest = target.substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name)
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (amp == std::string_view::npos)
      break;
    rest = rest.substr(amp + 1);
  }
  return std::nullopt;
}

} // namespace emporium::gateway
