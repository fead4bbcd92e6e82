#include "protocols/breaker.hpp"

#include <doctest/doctest.h>

using namespace emporium::protocols;
using namespace std::chrono_literals;
using state = breaker::state;

namespace {

struct clocked {
  breaker::time_point now{};
  breaker b{breaker_config{10s, 4, 0.5, 5s, 1}};

  void calls(int ok, int failed) {
    for (int i = 0; i < ok + failed; ++i) {
      REQUIRE(b.allow(now));
      b.record(i < ok, now);
    }
  }
};

} // namespace

TEST_CASE_FIXTURE(clocked, "it stays closed below the minimum calls and below the failure rate") {
  calls(0, 3); // three failures, but fewer than four calls
  CHECK(b.current(now) == state::closed);
  calls(1, 0); // a success never opens it, even at 3 of 4 failed
  CHECK(b.current(now) == state::closed);
  calls(0, 1); // the fifth call fails: 4 of 5
  CHECK(b.current(now) == state::open);
  CHECK(b.times_opened() == 1);
}

TEST_CASE_FIXTURE(clocked, "it opens when the failure rate reaches the threshold") {
  calls(3, 1); // 1 of 4
  CHECK(b.current(now) == state::closed);
  calls(0, 1); // 2 of 5
  CHECK(b.current(now) == state::closed);
  calls(0, 1); // 3 of 6 = 50 %
  CHECK(b.current(now) == state::open);
}

TEST_CASE_FIXTURE(clocked, "failures older than the window are forgotten") {
  calls(0, 3);
  now += 11s;
  calls(3, 1); // the old failures left the window: 1 of 4
  CHECK(b.current(now) == state::closed);
}

TEST_CASE_FIXTURE(clocked, "open refuses calls until the timeout, then lets one probe through") {
  calls(0, 4);
  REQUIRE(b.current(now) == state::open);
  CHECK_FALSE(b.allow(now));
  now += 4999ms;
  CHECK_FALSE(b.allow(now));
  now += 1ms;
  CHECK(b.current(now) == state::half_open);
  CHECK(b.allow(now));       // the probe
  CHECK_FALSE(b.allow(now)); // only one at a time
}

TEST_CASE_FIXTURE(clocked, "a successful probe closes it with a clean window; a failed one reopens it") {
  calls(0, 4);
  now += 5s;
  REQUIRE(b.allow(now));
  b.record(false, now);
  CHECK(b.current(now) == state::open);
  CHECK(b.times_opened() == 2);
  now += 5s;
  REQUIRE(b.allow(now));
  b.record(true, now);
  CHECK(b.current(now) == state::closed);
  calls(2, 1); // the failures before it closed do not count any more
  CHECK(b.current(now) == state::closed);
  CHECK(to_string(b.current(now)) == "closed");
}

TEST_CASE_FIXTURE(clocked, "a late answer while open changes nothing") {
  REQUIRE(b.allow(now)); // a slow call goes out
  calls(0, 4);
  REQUIRE(b.current(now) == state::open);
  b.record(true, now); // the slow call answers
  CHECK(b.current(now) == state::open);
}
