#include "payments/adapter.hpp"

#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

/// Records every provider call; the test answers them.
struct fake_net : payments::transport {
  struct call {
    std::string base, op, key, body;
    std::function<void(payments::http_reply)> done;
  };
  std::vector<call> calls;

  void post(const std::string& base, const std::string& op, const std::string& key,
            std::string body, std::function<void(payments::http_reply)> done) override {
    calls.push_back({base, op, key, std::move(body), std::move(done)});
  }
};

struct adapter_fixture : test::deterministic {
  std::shared_ptr<fake_net> net = std::make_shared<fake_net>();
  caf::actor adapter;

  /// `minimum_calls`: how many outcomes a breaker needs before it may open.
  explicit adapter_fixture(int attempts = 3, int minimum_calls = 2) {
    payments::adapter_config cfg;
    cfg.providers = {{"primary", "http://p"}, {"secondary", "http://s"}};
    cfg.breaker.minimum_calls = minimum_calls;
    cfg.breaker.failure_rate = 0.5;
    cfg.breaker.open_timeout = 5s;
    cfg.max_attempts = attempts;
    cfg.backoff_base = 100ms;
    cfg.backoff_max = 1s;
    cfg.net = net;
    cfg.seed = 42;
    adapter = payments::spawn_payment_adapter(sys, cfg);
  }

  /// Answers provider call `i` and runs what follows.
  void answer(size_t i, int status, std::string body = "") {
    net->calls.at(i).done(payments::http_reply{status, std::move(body), status == 0 ? "refused" : ""});
    run();
  }

  payment_call authorize(const std::string& order = "o1") {
    return payment_call{"authorize", "", order + ":authorize", 1999, "EUR", "tok", order, ""};
  }

  payment_call capture_on_primary(const std::string& order = "o1") {
    return payment_call{"capture", "primary", order + ":capture", 1999, "EUR", "", order, "a1"};
  }
};

} // namespace

TEST_CASE_FIXTURE(adapter_fixture, "authorize goes to the primary with the contract's body and key") {
  auto pending = send_request(adapter, authorize());
  run();
  REQUIRE(net->calls.size() == 1);
  auto& c = net->calls[0];
  CHECK(c.base == "http://p");
  CHECK(c.op == "authorize");
  CHECK(c.key == "o1:authorize");
  CHECK(c.body.find("\"amount_minor\":1999") != std::string::npos);
  CHECK(c.body.find("\"token\":\"tok\"") != std::string::npos);
  answer(0, 200, R"({"authorization_id":"a1","status":"authorized"})");
  auto out = receive<payment_outcome>(pending);
  REQUIRE(out);
  CHECK(out->provider == "primary");
  CHECK(out->status == "authorized");
  CHECK(out->authorization_id == "a1");
}

TEST_CASE_FIXTURE(adapter_fixture, "a decline is final: no retry") {
  auto pending = send_request(adapter, authorize());
  run();
  answer(0, 200, R"({"status":"declined"})");
  auto out = receive<payment_outcome>(pending);
  REQUIRE(out);
  CHECK(out->status == "declined");
  advance_time(10s);
  CHECK(net->calls.size() == 1);
}

TEST_CASE("transient errors are retried on the same provider after a backoff, then the call goes on to the secondary") {
  adapter_fixture f{3, 100}; // breakers that stay closed: only the attempts decide
  auto pending = f.send_request(f.adapter, f.authorize());
  f.run();
  f.answer(0, 503);
  CHECK(f.net->calls.size() == 1); // not at once: after a backoff
  f.advance_time(1s);
  REQUIRE(f.net->calls.size() == 2);
  CHECK(f.net->calls[1].base == "http://p");
  CHECK(f.net->calls[1].key == "o1:authorize"); // the same key: the provider dedupes
  f.answer(1, 0); // no answer at all (refused, timed out)
  f.advance_time(1s);
  REQUIRE(f.net->calls.size() == 3);
  CHECK(f.net->calls[2].base == "http://p");
  f.answer(2, 502);
  // The primary's attempts are spent: the same call, at once, on the secondary.
  REQUIRE(f.net->calls.size() == 4);
  CHECK(f.net->calls[3].base == "http://s");
  CHECK(f.net->calls[3].key == "o1:authorize");
  f.answer(3, 200, R"({"authorization_id":"s1","status":"authorized"})");
  auto out = f.receive<payment_outcome>(pending);
  REQUIRE(out);
  CHECK(out->provider == "secondary");
  CHECK(out->authorization_id == "s1");
}

TEST_CASE("every provider tried to the end: unavailable with the last error, nothing more sent") {
  adapter_fixture f{2, 100};
  auto pending = f.send_request(f.adapter, f.authorize());
  f.run();
  for (size_t i = 0; i < 4; ++i) {
    REQUIRE(f.net->calls.size() == i + 1);
    CHECK(f.net->calls[i].base == (i < 2 ? "http://p" : "http://s"));
    f.answer(i, 503);
    f.advance_time(1s);
  }
  auto out = f.receive<payment_outcome>(pending);
  REQUIRE(!out);
  CHECK(to_errc(out.error()) == errc::unavailable);
  f.advance_time(10s);
  CHECK(f.net->calls.size() == 4);
}

TEST_CASE_FIXTURE(adapter_fixture, "the primary's breaker opening during a call moves that call to the secondary at once") {
  auto pending = send_request(adapter, authorize());
  run();
  answer(0, 503);
  advance_time(1s);
  REQUIRE(net->calls.size() == 2);
  answer(1, 0); // 2 of 2 failed: the primary opens
  REQUIRE(net->calls.size() == 3); // no backoff: a different provider
  CHECK(net->calls[2].base == "http://s");
  CHECK(net->calls[2].key == "o1:authorize");
  answer(2, 200, R"({"authorization_id":"s1","status":"authorized"})");
  auto out = receive<payment_outcome>(pending);
  REQUIRE(out);
  CHECK(out->provider == "secondary");
}

TEST_CASE("a call for a named provider never goes to another one") {
  adapter_fixture f{3, 100};
  auto pending = f.send_request(f.adapter, f.capture_on_primary());
  f.run();
  for (size_t i = 0; i < 3; ++i) {
    REQUIRE(f.net->calls.size() == i + 1);
    f.answer(i, 503);
    f.advance_time(1s);
  }
  for (auto& c : f.net->calls)
    CHECK(c.base == "http://p");
  CHECK(f.net->calls.size() == 3);
  CHECK(to_errc(f.receive<payment_outcome>(pending).error()) == errc::unavailable);
}

TEST_CASE_FIXTURE(adapter_fixture, "a transient error then success answers the success") {
  auto pending = send_request(adapter, authorize());
  run();
  answer(0, 500);
  advance_time(1s);
  answer(1, 200, R"({"authorization_id":"a1","status":"authorized"})");
  auto out = receive<payment_outcome>(pending);
  REQUIRE(out);
  CHECK(out->status == "authorized");
}

TEST_CASE("with the primary's breaker open, authorize falls back to the secondary; calls for the primary wait") {
  adapter_fixture f{1}; // one attempt per call: every failure is one breaker outcome
  for (int i = 0; i < 2; ++i) {
    auto p = f.send_request(f.adapter, f.capture_on_primary("o" + std::to_string(i)));
    f.run();
    f.answer(f.net->calls.size() - 1, 503);
    CHECK(to_errc(f.receive<payment_outcome>(p).error()) == errc::unavailable);
  }
  // 2 of 2 failed: the primary is open.
  auto p = f.send_request(f.adapter, f.authorize("o9"));
  f.run();
  REQUIRE(f.net->calls.size() == 3);
  CHECK(f.net->calls[2].base == "http://s");
  f.answer(2, 200, R"({"authorization_id":"s1","status":"authorized"})");
  auto out = f.receive<payment_outcome>(p);
  REQUIRE(out);
  CHECK(out->provider == "secondary");
  // A capture of a primary authorization is not sent while the primary is open.
  auto cap = f.send_request(f.adapter, f.capture_on_primary());
  f.run();
  CHECK(f.net->calls.size() == 3);
  CHECK(to_errc(f.receive<payment_outcome>(cap).error()) == errc::unavailable);
  // After the open timeout a probe goes to the primary again; its success closes it.
  f.advance_time(5s);
  auto again = f.send_request(f.adapter, f.authorize("o10"));
  f.run();
  REQUIRE(f.net->calls.size() == 4);
  CHECK(f.net->calls[3].base == "http://p");
  f.answer(3, 200, R"({"authorization_id":"a2","status":"authorized"})");
  CHECK(f.receive<payment_outcome>(again));
}

TEST_CASE("both breakers open: unavailable at once, nothing sent") {
  adapter_fixture f{1};
  for (int i = 0; i < 2; ++i) { // each call: the primary, then the secondary
    auto p = f.send_request(f.adapter, f.authorize("o" + std::to_string(i)));
    f.run();
    f.answer(f.net->calls.size() - 1, 503);
    CHECK(f.net->calls.back().base == "http://s");
    f.answer(f.net->calls.size() - 1, 503);
    CHECK(!f.receive<payment_outcome>(p));
  }
  auto sent = f.net->calls.size();
  CHECK(sent == 4);
  auto p = f.send_request(f.adapter, f.authorize("o9"));
  f.run();
  CHECK(f.net->calls.size() == sent);
  CHECK(to_errc(f.receive<payment_outcome>(p).error()) == errc::unavailable);
}

TEST_CASE_FIXTURE(adapter_fixture, "a 4xx or an unreadable answer is an internal error, not retried") {
  auto pending = send_request(adapter, authorize());
  run();
  answer(0, 409, R"({"status":"rejected"})");
  CHECK(to_errc(receive<payment_outcome>(pending).error()) == errc::internal);
  auto garbled = send_request(adapter, authorize("o2"));
  run();
  answer(1, 200, "not json");
  CHECK(to_errc(receive<payment_outcome>(garbled).error()) == errc::internal);
  advance_time(10s);
  CHECK(net->calls.size() == 2);
}
