#include "protocols/ids.hpp"

#include <openssl/sha.h>

#include <chrono>
#include <cstdint>
#include <random>

namespace emporium::protocols {

namespace {

std::mt19937_64& rng() {
  thread_local std::mt19937_64 engine{[] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }()};
  return engine;
}

void append_hex(std::string& out, uint64_t x, int digits) {
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i)
    out += hex[(x >> (i * 4)) & 0xF];
}

} // namespace

std::string new_uuid() {
  auto hi = rng()();
  auto lo = rng()();
  hi = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x0000000000004000ull; // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull; // variant 10
  std::string out;
  out.reserve(36);
  append_hex(out, hi >> 32, 8);
  out += '-';
  append_hex(out, (hi >> 16) & 0xFFFF, 4);
  out += '-';
  append_hex(out, hi & 0xFFFF, 4);
  out += '-';
  append_hex(out, lo >> 48, 4);
  out += '-';
  append_hex(out, lo & 0xFFFFFFFFFFFFull, 12);
  return out;
}

std::string new_id(std::string_view prefix) {
  // Time first (48 bits of ms), then 48 random bits: ids made close in time
  // sort close together, so B-tree inserts land on few pages.
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count();
  std::string out{prefix};
  append_hex(out, static_cast<uint64_t>(ms), 12);
  append_hex(out, rng()(), 12);
  return out;
}

bool valid_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 64)
    return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(id[0]))
    return false;
  for (char c : id.substr(1))
    if (!alnum(c) && c != '.' && c != '_' && c != ':' && c != '-')
      return false;
  return true;
}

std::string derived_id(std::string_view prefix, std::string_view sub, std::string_view key) {
  std::string input{sub};
  input += '\x1f';
  input += key;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), md);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out{prefix};
  for (int i = 0; i < 12; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xF];
  }
  return out;
}

} // namespace emporium::protocols
