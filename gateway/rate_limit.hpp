#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

/// Rate limits (the contract's "Limits and overload"): a token bucket per
/// client, and which address a request comes from behind trusted proxies.
/// Beast-free; time is passed in, so tests move it.
namespace emporium::gateway {

/// `RATE:BURST`: RATE tokens a second flow into a bucket of BURST; `0` is off.
struct rate_limit {
  double per_second = 0;
  double burst = 0;
  bool on() const { return per_second > 0 && burst >= 1; }
};

/// Parses `RATE:BURST` (positive numbers, BURST >= 1) or `0`; the reason
/// when it is neither.
std::optional<rate_limit> parse_rate_limit(std::string_view text, std::string& why);

/// A token bucket per client key, in 16 shards of their own lock (two I/O
/// threads meet on one only when two clients hash alike). Bounded: at most
/// `max_clients` keys; a full bucket is the same as none, so a full shard
/// first forgets its full buckets (at most once a second), and refuses new
/// keys only when every one it holds is still draining.
class rate_limiter {
public:
  using clock = std::chrono::steady_clock;

  enum class verdict : uint8_t { allowed, limited, full };
  struct answer {
    verdict v = verdict::allowed;
    unsigned retry_after_s = 0; ///< limited: whole seconds until a token is there, >= 1
  };

  rate_limiter(rate_limit r, size_t max_clients);

  bool on() const { return rate_.on(); }

  /// Takes one token of `client`'s bucket at `now`.
  answer take(std::string_view client, clock::time_point now);

  /// Keys held (for tests and metrics).
  size_t clients() const;

private:
  struct bucket {
    double tokens;
    clock::time_point at;
  };
  struct shard {
    mutable std::mutex m;
    std::unordered_map<std::string, bucket> buckets;
    clock::time_point swept{};
  };

  double level(const bucket& b, clock::time_point now) const;

  rate_limit rate_;
  size_t per_shard_;
  std::array<shard, 16> shards_;
};

/// An address network (IPv4 as v4-mapped IPv6) with its prefix length.
struct ip_network {
  std::array<uint8_t, 16> addr{};
  int prefix = 128;
};

/// `ADDR[/PREFIX],...` (IPv4 or IPv6); the reason when one is not.
std::optional<std::vector<ip_network>> parse_networks(std::string_view list, std::string& why);

/// The address a request comes from: `peer`, or when `peer` is in `trusted`,
/// the last address of `forwarded_for` (X-Forwarded-For) that is not: each
/// trusted proxy appends the address it got the request from, so the entries
/// right of the first untrusted one are proxies' and the ones left of it
/// are the client's word. An entry that is not an address ends the walk there
/// (the last trusted hop is used).
std::string client_address(std::string_view peer, std::string_view forwarded_for,
                           const std::vector<ip_network>& trusted);

} // namespace emporium::gateway
