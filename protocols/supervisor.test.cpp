#include "protocols/supervisor.hpp"

#include "tests/support/deterministic.hpp"

#include <doctest/doctest.h>

using namespace emporium;
using namespace emporium::protocols;
using namespace std::chrono_literals;

namespace {

/// A child that doubles ints, crashes on "crash" and stops on "stop".
struct supervisor_fixture : test::deterministic {
  int spawned = 0;
  caf::actor sup = spawn_supervised(
    sys, "doubler",
    [this](caf::actor_system& s) {
      ++spawned;
      return s.spawn([](caf::event_based_actor* self) -> caf::behavior {
        return {
          [](int x) { return x * 2; },
          [self](double) { // never answered before it crashes: the promise is kept
            auto rp = std::make_shared<caf::response_promise>(self->make_response_promise());
            self->attach_functor([rp] {});
            return caf::delegated<int>{};
          },
          [self](const std::string& what) {
            self->quit(what == "crash" ? caf::make_error(errc::internal, std::string{"injected"})
                                       : caf::error{});
          },
        };
      });
    },
    restart_policy{100ms, 1s, 60s, 7});

  caf::expected<int> twice(int x) { return ask<int>(sup, x); }
  void tell(std::string what) {
    self->send(sup, std::move(what));
    run();
  }
};

} // namespace

TEST_CASE_FIXTURE(supervisor_fixture, "messages reach the child; a crash is answered unavailable until the restart after a backoff") {
  CHECK(twice(21) == 42);
  tell("crash");
  auto r = twice(1);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::unavailable);
  CHECK(spawned == 1);
  advance_time(100ms); // the first backoff: at most base
  CHECK(spawned == 2);
  CHECK(twice(2) == 4);
}

TEST_CASE_FIXTURE(supervisor_fixture, "crashes in a row back off exponentially up to the cap; a stable child starts over") {
  for (auto cap : {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms}) {
    tell("crash");
    advance_time(cap);
    CHECK(twice(1) == 2); // up again within its cap
  }
  CHECK(spawned == 7);
  advance_time(61s);
  tell("crash");
  advance_time(100ms); // the first backoff again
  CHECK(twice(1) == 2);
}

TEST_CASE_FIXTURE(supervisor_fixture, "a child that stops normally ends its supervisor; the supervisor's exit ends the child") {
  tell("stop");
  CHECK_FALSE(twice(1));
  CHECK(spawned == 1);
  supervisor_fixture other;
  CHECK(other.twice(1) == 2);
  other.self->send_exit(other.sup, caf::exit_reason::user_shutdown);
  other.run();
  CHECK_FALSE(other.twice(1));
}

TEST_CASE_FIXTURE(supervisor_fixture, "a request the child holds when it crashes is answered unavailable, not lost") {
  auto held = send_request(sup, 1.5);
  run();
  tell("crash");
  auto r = receive<int>(held);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::unavailable);
}

namespace {

/// Two slots of doublers; "crash" kills the one asked.
struct group_fixture : test::deterministic {
  std::vector<int> spawned = std::vector<int>(2, 0);
  actor_group group{sys, "doublers", 2,
                    [this](caf::actor_system& s, size_t i) {
                      ++spawned[i];
                      return s.spawn([](caf::event_based_actor* self) -> caf::behavior {
                        return {
                          [](int x) { return x * 2; },
                          [self](const std::string&) {
                            self->quit(caf::make_error(errc::internal, std::string{"injected"}));
                          },
                        };
                      });
                    },
                    restart_policy{100ms, 1s, 60s, 7}};

  caf::expected<int> twice(size_t slot, int x) { return ask<int>(group[slot], x); }
  void crash(size_t slot) {
    self->send(group[slot], std::string{"crash"});
    run();
  }
};

} // namespace

TEST_CASE_FIXTURE(group_fixture, "a group member that crashes is answered unavailable at once, then respawned into its slot; the others serve on") {
  CHECK(twice(0, 1) == 2);
  CHECK(twice(1, 2) == 4);
  crash(1);
  auto r = twice(1, 3);
  REQUIRE_FALSE(r);
  CHECK(to_errc(r.error()) == errc::unavailable); // CAF: the receiver is down
  CHECK(twice(0, 3) == 6);
  advance_time(100ms); // first backoff: at most base
  CHECK(spawned == std::vector<int>{1, 2});
  CHECK(twice(1, 3) == 6);
}

TEST_CASE_FIXTURE(group_fixture, "a slot's crashes in a row back off up to the cap; stop() ends the members for good") {
  for (auto cap : {100ms, 200ms, 400ms, 800ms, 1000ms}) {
    crash(0);
    advance_time(cap);
    CHECK(twice(0, 1) == 2);
  }
  CHECK(spawned[0] == 6);
  auto old = group[0];
  group.stop();
  run();
  advance_time(10s);
  CHECK(spawned[0] == 6); // not restarted
  CHECK_FALSE(ask<int>(old, 1));
}
