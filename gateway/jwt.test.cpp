#include "gateway/jwt.hpp"

#include "protocols/errc.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::gateway;

TEST_CASE("a signed token verifies and carries its claims") {
  principal p{"wh-bot", "warehouse", {"w1", "w2"}, 0};
  auto t = sign_jwt(p, "s3cret", 1000, 60);
  auto v = verify_jwt(t, "s3cret", 1001);
  REQUIRE(v);
  CHECK(v->sub == "wh-bot");
  CHECK(v->may_push_for("w2"));
  CHECK_FALSE(v->may_push_for("w3"));
}

TEST_CASE("expired, badly signed, alg none and malformed tokens are refused") {
  auto t = sign_jwt({"u", "customer", {}, 0}, "s3cret", 1000, 60);
  CHECK_FALSE(verify_jwt(t, "s3cret", 1060));
  CHECK_FALSE(verify_jwt(t, "other", 1001));
  CHECK_FALSE(verify_jwt("abc", "s3cret", 1001));
  CHECK_FALSE(verify_jwt("a.b.c.d", "s3cret", 1001));
  // {"alg":"none"} . claims . empty signature
  auto dot = t.find('.');
  auto rest = t.substr(dot + 1, t.rfind('.') - dot - 1);
  auto none = std::string{"eyJhbGciOiJub25lIn0."} + rest + ".";
  auto r = verify_jwt(none, "s3cret", 1001);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::unauthenticated);
}

TEST_CASE("an unknown role is refused") {
  auto t = sign_jwt({"u", "admin", {}, 0}, "k", 1000, 60);
  CHECK_FALSE(verify_jwt(t, "k", 1001));
}
