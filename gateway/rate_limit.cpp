#include "gateway/rate_limit.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>

namespace emporium::gateway {

namespace {

std::optional<double> positive(std::string_view s) {
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || !(v > 0) || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

/// An IPv4 or IPv6 literal as 16 bytes (IPv4 v4-mapped); `[v6]` accepted.
std::optional<std::array<uint8_t, 16>> address(std::string_view text) {
  if (text.size() > 2 && text.front() == '[' && text.back() == ']')
    text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > 45)
    return std::nullopt;
  std::string s{text};
  std::array<uint8_t, 16> out{};
  if (unsigned char v4[4]; inet_pton(AF_INET, s.c_str(), v4) == 1) {
    out[10] = out[11] = 0xff;
    std::copy(v4, v4 + 4, out.begin() + 12);
    return out;
  }
  if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1)
    return out;
  return std::nullopt;
}

bool is_v4_mapped(const std::array<uint8_t, 16>& a) {
  return std::all_of(a.begin(), a.begin() + 10, [](uint8_t b) { return b == 0; }) && a[10] == 0xff
         && a[11] == 0xff;
}

bool contains(const ip_network& n, const std::array<uint8_t, 16>& a) {
  int bits = n.prefix;
  for (size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((n.addr[i] & mask) != (a[i] & mask))
      return false;
  }
  return true;
}

bool trusted_one(const std::vector<ip_network>& trusted, const std::array<uint8_t, 16>& a) {
  return std::any_of(trusted.begin(), trusted.end(), [&](auto& n) { return contains(n, a); });
}

} // namespace

std::optional<rate_limit> parse_rate_limit(std::string_view text, std::string& why) {
  if (text == "0")
    return rate_limit{};
  auto colon = text.find(':');
  auto rate = colon == std::string_view::npos ? std::nullopt : positive(text.substr(0, colon));
  auto burst = colon == std::string_view::npos ? std::nullopt : positive(text.substr(colon + 1));
  if (!rate || !burst || *burst < 1) {
    why = "takes RATE:BURST (requests per second : bucket size, BURST >= 1) or 0 (off)";
    return std::nullopt;
  }
  return rate_limit{*rate, *burst};
}

rate_limiter::rate_limiter(rate_limit r, size_t max_clients)
  : rate_(r), per_shard_(std::max<size_t>(1, max_clients / 16)) {
}

double rate_limiter::level(const bucket& b, clock::time_point now) const {
  auto secs = std::chrono::duration<double>(now - b.at).count();
  return std::min(rate_.burst, b.tokens + std::max(0.0, secs) * rate_.per_second);
}

rate_limiter::answer rate_limiter::take(std::string_view client, clock::time_point now) {
  if (!on())
    return {};
  auto& s = shards_[std::hash<std::string_view>{}(client) % shards_.size()];
  std::lock_guard lock{s.m};
  auto i = s.buckets.find(std::string{client});
  if (i == s.buckets.end()) {
    if (s.buckets.size() >= per_shard_) {
      if (now - s.swept < std::chrono::seconds{1})
        return {verdict::full, 1};
      s.swept = now;
      std::erase_if(s.buckets, [&](auto& kv) { return level(kv.second, now) >= rate_.burst; });
      if (s.buckets.size() >= per_shard_)
        return {verdict::full, 1};
    }
    i = s.buckets.emplace(std::string{client}, bucket{rate_.burst, now}).first;
  }
  auto& b = i->second;
  b.tokens = level(b, now);
  b.at = now;
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return {};
  }
  auto wait = std::ceil((1 - b.tokens) / rate_.per_second);
  return {verdict::limited, static_cast<unsigned>(std::clamp(wait, 1.0, 86400.0))};
}

size_t rate_limiter::clients() const {
  size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lock{s.m};
    n += s.buckets.size();
  }
  return n;
}

std::optional<std::vector<ip_network>> parse_networks(std::string_view list, std::string& why) {
  std::vector<ip_network> out;
  while (!list.empty()) {
    auto comma = list.find(',');
    auto one = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (one.empty())
      continue;
    auto slash = one.find('/');
    auto a = address(one.substr(0, slash));
    if (!a) {
      why = "'" + std::string{one} + "' is not an IP address or ADDR/PREFIX";
      return std::nullopt;
    }
    ip_network n{*a, 128};
    int max = is_v4_mapped(*a) ? 32 : 128;
    if (slash != std::string_view::npos) {
      auto p = one.substr(slash + 1);
      int prefix = -1;
      auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
      if (ec != std::errc{} || end != p.data() + p.size() || prefix < 0 || prefix > max) {
        why = "'" + std::string{one} + "': the prefix must be 0 to " + std::to_string(max);
        return std::nullopt;
      }
      n.prefix = max == 32 ? prefix + 96 : prefix;
    }
    out.push_back(n);
  }
  return out;
}

std::string client_address(std::string_view peer, std::string_view forwarded_for,
                           const std::vector<ip_network>& trusted) {
  auto p = address(peer);
  if (trusted.empty() || !p || !trusted_one(trusted, *p))
    return std::string{peer};
  std::string_view last = peer; // the nearest trusted hop so far
  while (!forwarded_for.empty()) {
    auto comma = forwarded_for.rfind(',');
    auto one = trim(comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1));
    forwarded_for = comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
    auto a = address(one);
    if (!a)
      break;
    if (!trusted_one(trusted, *a))
      return std::string{one};
    last = one;
  }
  return std::string{last};
}

} // namespace emporium::gateway
