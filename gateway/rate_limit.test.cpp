#include "gateway/rate_limit.hpp"

#include <doctest/doctest.h>

using namespace emporium::gateway;
using namespace std::chrono_literals;
using verdict = rate_limiter::verdict;

namespace {

rate_limit limit(std::string_view text) {
  std::string why;
  auto r = parse_rate_limit(text, why);
  REQUIRE_MESSAGE(r, why);
  return *r;
}

std::vector<ip_network> nets(std::string_view text) {
  std::string why;
  auto n = parse_networks(text, why);
  REQUIRE_MESSAGE(n, why);
  return *n;
}

} // namespace

TEST_CASE("RATE:BURST parses; 0 is off; anything else is refused with the reason") {
  CHECK(limit("20:60").per_second == 20);
  CHECK(limit("20:60").burst == 60);
  CHECK(limit("0.5:1").per_second == 0.5);
  CHECK_FALSE(limit("0").on());
  std::string why;
  for (auto bad : {"", "20", "20:", ":60", "-1:5", "20:0", "20:0.5", "x:y", "20:60:1", "inf:5"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_rate_limit(bad, why));
  }
  CHECK(why.find("RATE:BURST") != std::string::npos);
}

TEST_CASE("a bucket gives its burst at once, then one token per 1/RATE, and says when") {
  rate_limiter rl{limit("2:3"), 1000};
  auto t = rate_limiter::clock::time_point{} + 100s;
  for (int i = 0; i < 3; ++i)
    CHECK(rl.take("c1", t).v == verdict::allowed);
  auto a = rl.take("c1", t);
  CHECK(a.v == verdict::limited);
  CHECK(a.retry_after_s == 1); // 0.5 s to the next token, rounded up to a whole second
  CHECK(rl.take("c1", t + 499ms).v == verdict::limited);
  CHECK(rl.take("c1", t + 1000ms).v == verdict::allowed); // 2 tokens a second
  CHECK(rl.take("c1", t + 1000ms).v == verdict::allowed);
  CHECK(rl.take("c1", t + 1000ms).v == verdict::limited);
  // another client has its own bucket
  CHECK(rl.take("c2", t).v == verdict::allowed);
  // refill stops at the burst
  for (int i = 0; i < 3; ++i)
    CHECK(rl.take("c1", t + 60s).v == verdict::allowed);
  CHECK(rl.take("c1", t + 60s).v == verdict::limited);
}

TEST_CASE("a slow rate's Retry-After is the whole seconds until the next token") {
  rate_limiter rl{limit("0.1:1"), 1000};
  auto t = rate_limiter::clock::time_point{} + 100s;
  CHECK(rl.take("c", t).v == verdict::allowed);
  auto a = rl.take("c", t + 2500ms);
  CHECK(a.v == verdict::limited);
  CHECK(a.retry_after_s == 8); // 7.5 s left
  CHECK(rl.take("c", t + 10s).v == verdict::allowed);
}

TEST_CASE("off: every request is allowed and nothing is held") {
  rate_limiter rl{limit("0"), 1000};
  for (int i = 0; i < 100; ++i)
    CHECK(rl.take("c", {}).v == verdict::allowed);
  CHECK(rl.clients() == 0);
}

TEST_CASE("bounded: full buckets are forgotten for new clients; draining ones are kept") {
  rate_limiter rl{limit("1:2"), 16}; // one key per shard
  auto t = rate_limiter::clock::time_point{} + 100s;
  int full = 0;
  for (int i = 0; i < 200; ++i)
    full += rl.take("ip" + std::to_string(i), t).v == verdict::full;
  CHECK(rl.clients() == 16);
  CHECK(full == 200 - 16); // each still draining: no room, and no second sweep within 1 s
  // two seconds later every bucket is full again: the sweep makes room
  for (int i = 200; i < 400; ++i)
    rl.take("ip" + std::to_string(i), t + 2s);
  CHECK(rl.clients() == 16);
  int allowed = 0;
  for (int i = 400; i < 800; ++i)
    allowed += rl.take("ip" + std::to_string(i), t + 4s).v == verdict::allowed;
  CHECK(allowed >= 1);
  CHECK(rl.clients() <= 16);
}

TEST_CASE("networks: addresses and prefixes, IPv4 and IPv6; bad ones named") {
  CHECK(nets("10.0.0.0/8, 127.0.0.1,::1,fd00::/8").size() == 4);
  CHECK(nets("").empty());
  std::string why;
  CHECK_FALSE(parse_networks("10.0.0.0/33", why));
  CHECK(why.find("0 to 32") != std::string::npos);
  CHECK_FALSE(parse_networks("proxy.local", why));
  CHECK_FALSE(parse_networks("::/129", why));
}

TEST_CASE("the client behind trusted proxies is the last untrusted X-Forwarded-For entry") {
  auto trusted = nets("10.0.0.0/8,::1");
  // an untrusted peer: its own address, whatever it claims
  CHECK(client_address("203.0.113.9", "1.2.3.4", trusted) == "203.0.113.9");
  // a trusted peer: walk from the right past trusted hops
  CHECK(client_address("10.0.0.2", "198.51.100.7", trusted) == "198.51.100.7");
  CHECK(client_address("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.1.1", trusted) == "198.51.100.7");
  CHECK(client_address("::1", "2001:db8::5", trusted) == "2001:db8::5");
  // no header, or only trusted hops: the nearest trusted hop
  CHECK(client_address("10.0.0.2", "", trusted) == "10.0.0.2");
  CHECK(client_address("10.0.0.2", "10.9.9.9", trusted) == "10.9.9.9");
  // garbage ends the walk at the last trusted hop (a spoofer cannot pick a fresh bucket)
  CHECK(client_address("10.0.0.2", "1.1.1.1, nonsense", trusted) == "10.0.0.2");
  // no trusted proxies configured: the peer
  CHECK(client_address("10.0.0.2", "198.51.100.7", {}) == "10.0.0.2");
}
