#include "gateway/jwt.hpp"

#include "protocols/errc.hpp"

#include <boost/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

// Written here rather than taken from libjwt/cpp-jwt: the whole job is one
// HMAC (OpenSSL) and base64url, and keeping it here pins the algorithm to HS256
// and parses claims with the same strict JSON parser as the rest of the gateway.

namespace emporium::gateway {

namespace {

constexpr char b64url_chars[]
  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64url_encode(std::string_view in) {
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buf = (buf << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += b64url_chars[(buf >> bits) & 0x3F];
    }
  }
  if (bits > 0)
    out += b64url_chars[(buf << (6 - bits)) & 0x3F];
  return out;
}

bool b64url_decode(std::string_view in, std::string& out) {
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else return false;
    buf = (buf << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xFF);
    }
  }
  return true;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len);
  return std::string(reinterpret_cast<const char*>(md.data()), len);
}

caf::error reject(const char* why) {
  return caf::make_error(errc::unauthenticated, std::string{why});
}

} // namespace

bool principal::may_push_for(std::string_view wh) const noexcept {
  if (role == "ops")
    return true;
  if (role != "warehouse")
    return false;
  for (auto& w : warehouses)
    if (w == wh)
      return true;
  return false;
}

caf::expected<principal> verify_jwt(std::string_view token, std::string_view secret,
                                    int64_t now_s) {
  auto d1 = token.find('.');
  auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return reject("malformed token");
  auto head64 = token.substr(0, d1);
  auto body64 = token.substr(d1 + 1, d2 - d1 - 1);
  auto sig64 = token.substr(d2 + 1);
  std::string head, body, sig;
  if (!b64url_decode(head64, head) || !b64url_decode(body64, body)
      || !b64url_decode(sig64, sig))
    return reject("malformed token");
  boost::system::error_code ec;
  auto hv = boost::json::parse(head, ec);
  if (ec || !hv.is_object())
    return reject("malformed token header");
  auto* alg = hv.as_object().if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->as_string() != "HS256")
    return reject("token algorithm must be HS256");
  auto expected = hmac_sha256(secret, token.substr(0, d2));
  if (sig.size() != expected.size()
      || CRYPTO_memcmp(sig.data(), expected.data(), sig.size()) != 0)
    return reject("bad token signature");
  auto bv = boost::json::parse(body, ec);
  if (ec || !bv.is_object())
    return reject("malformed token claims");
  auto& claims = bv.as_object();
  principal p;
  auto* sub = claims.if_contains("sub");
  auto* role = claims.if_contains("role");
  auto* exp = claims.if_contains("exp");
  if (sub == nullptr || !sub->is_string() || sub->as_string().empty())
    return reject("token has no sub");
  if (role == nullptr || !role->is_string())
    return reject("token has no role");
  if (exp == nullptr || !(exp->is_int64() || exp->is_uint64()))
    return reject("token has no exp");
  p.sub = sub->as_string();
  p.role = role->as_string();
  if (p.role != "customer" && p.role != "warehouse" && p.role != "ops")
    return reject("unknown role");
  p.exp = exp->is_int64() ? exp->as_int64() : INT64_MAX;
  if (p.exp <= now_s)
    return reject("token expired");
  if (auto* wh = claims.if_contains("wh"); wh != nullptr) {
    if (!wh->is_array())
      return reject("wh claim must be a list");
    for (auto& w : wh->as_array()) {
      if (!w.is_string())
        return reject("wh claim must be a list of ids");
      p.warehouses.emplace_back(w.as_string());
    }
  }
  return p;
}

std::string sign_jwt(const principal& p, std::string_view secret, int64_t now_s,
                     int64_t ttl_s) {
  boost::json::object claims{{"sub", p.sub}, {"role", p.role}, {"iat", now_s},
                             {"exp", now_s + ttl_s}};
  if (!p.warehouses.empty()) {
    boost::json::array wh;
    for (auto& w : p.warehouses)
      wh.emplace_back(w);
    claims["wh"] = std::move(wh);
  }
  auto signing_input = b64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "."
                       + b64url_encode(boost::json::serialize(claims));
  return signing_input + "." + b64url_encode(hmac_sha256(secret, signing_input));
}

} // namespace emporium::gateway
