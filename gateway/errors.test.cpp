#include "gateway/errors.hpp"

#include <caf/sec.hpp>

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::gateway;

TEST_CASE("every code has the contract's status, and 429/503 carry Retry-After") {
  CHECK(http_status(errc::bad_json) == 400);
  CHECK(http_status(errc::invalid_field) == 400);
  CHECK(http_status(errc::unauthenticated) == 401);
  CHECK(http_status(errc::forbidden) == 403);
  CHECK(http_status(errc::not_found) == 404);
  CHECK(http_status(errc::method_not_allowed) == 405);
  CHECK(http_status(errc::insufficient_stock) == 409);
  CHECK(http_status(errc::conflict) == 409);
  CHECK(http_status(errc::invalid_state) == 409);
  CHECK(http_status(errc::too_large) == 413);
  CHECK(http_status(errc::rate_limited) == 429);
  CHECK(http_status(errc::unavailable) == 503);
  CHECK(to_reply(errc::unavailable, "x").retry_after == 1);
  CHECK(to_reply(errc::rate_limited, "x").retry_after == 1);
  CHECK(to_reply(errc::conflict, "x").retry_after == 0);
}

TEST_CASE("an actor's insufficient_stock carries available, in HTTP and in a frame alike") {
  auto r = to_reply(caf::make_error(errc::insufficient_stock, int64_t{3}));
  CHECK(r.status == 409);
  CHECK(r.body.at("error").as_string() == "insufficient_stock");
  CHECK(r.body.at("available").as_int64() == 3);
  auto frame = boost::json::parse(error_frame(r, {{"sku", "S1"}})).as_object();
  CHECK(frame.at("type").as_string() == "error");
  CHECK(frame.at("available").as_int64() == 3);
  CHECK(frame.at("sku").as_string() == "S1");
}

TEST_CASE("an actor's (field, message) names the field; a message passes through") {
  auto f = to_reply(caf::make_error(errc::invalid_field, std::string{"quantity"}, std::string{"too many"}));
  CHECK(f.body.at("field").as_string() == "quantity");
  CHECK(f.body.at("message").as_string() == "too many");
  auto m = to_reply(caf::make_error(errc::not_found, std::string{"unknown cart"}));
  CHECK(m.status == 404);
  CHECK(m.body.at("message").as_string() == "unknown cart");
  CHECK_FALSE(m.body.contains("field"));
}

TEST_CASE("CAF's own errors (a timeout, a receiver gone) are 503, never 500") {
  auto t = to_reply(caf::make_error(caf::sec::request_timeout));
  CHECK(t.status == 503);
  CHECK(t.retry_after == 1);
  auto gone = to_reply(caf::make_error(caf::sec::request_receiver_down));
  CHECK(gone.status == 503);
}

TEST_CASE("a field error names its field") {
  auto r = to_reply(field_error{errc::invalid_field, "payment.token", "payment.token must not be empty"});
  CHECK(r.status == 400);
  CHECK(r.body.at("field").as_string() == "payment.token");
}
