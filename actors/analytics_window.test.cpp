#include "actors/analytics_window.hpp"

#include <doctest/doctest.h>

using namespace emporium::actors;

namespace {
constexpr int64_t t0 = 1'800'000'000; // a round hour: 1 800 000 000 = 500 000 h
}

TEST_CASE("an event counts in every window that holds it and falls out as time moves") {
  windowed_counts<2> w;
  w.add(t0, 0, 3);
  w.add(t0 + 10, 1, 1);
  CHECK(w.sum(t0 + 10, 1) == std::array<int64_t, 2>{0, 1});
  CHECK(w.sum(t0 + 10, 11) == std::array<int64_t, 2>{3, 1});
  CHECK(w.sum(t0 + 10, 10) == std::array<int64_t, 2>{0, 1}); // (now - 10, now]: t0 is out
  CHECK(w.sum(t0 + 70, 60) == std::array<int64_t, 2>{0, 0});
  CHECK(w.sum(t0 + 3600, 3601) == std::array<int64_t, 2>{3, 1}); // minute buckets now
  CHECK(w.sum(t0 + 25 * 3600, windowed_counts<2>::max_window_s)
        == std::array<int64_t, 2>{0, 0}); // dropped after 25 h
  CHECK(w.empty());
}

TEST_CASE("old buckets coarsen: exact to the second for 2 min, to the minute for 2 h, then the hour") {
  windowed_counts<1> w;
  for (int64_t s = 0; s < 3 * 3600; ++s) // one event a second for three hours
    w.add(t0 + s, 0, 1);
  auto now = t0 + 3 * 3600 - 1;
  CHECK(w.sum(now, 1)[0] == 1);
  CHECK(w.sum(now, 90)[0] == 90);
  CHECK(w.sum(now, 600)[0] == 600);  // minute buckets, aligned edge
  CHECK(w.sum(now, 7200)[0] == 7200); // the edge falls between an hour and a minute bucket
  CHECK(w.sum(now, 7230)[0] == 7200); // the hour bucket holding the edge starts before it: out
  CHECK(w.sum(now, 24 * 3600)[0] == 3 * 3600);
  CHECK(w.bucket_count() <= 120 + 120 + 25);
}

TEST_CASE("an event arriving late lands in the bucket of its own time") {
  windowed_counts<1> w;
  w.add(t0 + 100, 0, 1);
  w.add(t0 + 50, 0, 1); // out of order
  w.add(t0 + 100, 0, 1);
  CHECK(w.sum(t0 + 100, 1)[0] == 2);
  CHECK(w.sum(t0 + 100, 51)[0] == 3);
  CHECK(w.sum(t0 + 100, 50)[0] == 2);
}

TEST_CASE("without queries the buckets stay bounded") {
  windowed_counts<1> w;
  for (int64_t s = 0; s < 48 * 3600; s += 1)
    w.add(t0 + s, 0, 1);
  CHECK(w.bucket_count() <= 2 * (120 + 120 + 25));
}
