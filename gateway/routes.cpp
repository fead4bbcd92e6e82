#include "gateway/routes.hpp"

#include "protocols/ids.hpp"

namespace emporium::gateway {

namespace {

/// Splits the path of `target` (the query cut off) into its segments.
std::vector<std::string_view> segments(std::string_view target) {
  if (auto q = target.find('?'); q != std::string_view::npos)
    target = target.substr(0, q);
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < target.size()) {
    if (target[i] == '/') {
      ++i;
      continue;
    }
    auto j = target.find('/', i);
    if (j == std::string_view::npos)
      j = target.size();
    out.push_back(target.substr(i, j - i));
    i = j;
  }
  return out;
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

/// Whether the decoded path fits `pattern`; fills the parameters.
bool fits(std::string_view pattern, const std::vector<std::string>& path, route_match& m) {
  auto parts = segments(pattern);
  if (parts.size() != path.size())
    return false;
  m.param_count = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    auto p = parts[i];
    if (p.size() > 2 && p.front() == '{' && p.back() == '}') {
      if (m.param_count == m.params.size())
        return false;
      m.params[m.param_count++] = {p.substr(1, p.size() - 2), path[i]};
    } else if (p != path[i]) {
      return false;
    }
  }
  return true;
}

} // namespace

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
  std::vector<std::string> path;
  for (auto s : segments(target)) {
    std::string decoded;
    if (!percent_decode(s, decoded)) {
      out.message = "no such route";
      return out; // not a path of ours: 404
    }
    path.push_back(std::move(decoded));
  }
  for (auto& r : table) {
    route_match m2;
    if (!fits(r.pattern, path, m2))
      continue;
    if (out.pattern.empty()) {
      out.pattern = r.pattern;
      out.params = m2.params;
      out.param_count = m2.param_count;
    }
    if (r.pattern != out.pattern)
      continue; // an earlier, more specific pattern matched this path
    if (r.verb != m) {
      out.allow += out.allow.empty() ? "" : ", ";
      out.allow += method_name(r.verb);
      continue;
    }
    out.found = &r;
    out.allow.clear();
    break;
  }
  if (out.pattern.empty()) {
    out.message = "no such route";
    return out;
  }
  if (out.found == nullptr) {
    out.message = "method not allowed on this route";
    out.error = errc::method_not_allowed;
    return out;
  }
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

} // namespace emporium::gateway
