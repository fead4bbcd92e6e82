// The analytics model's costs (docs/analytics.md): events/s one model
// ingests, p50/p99 of trending and recommendations with `skus` SKUs in the
// windows, and memory per SKU tracked. One thread, no actor around it: the
// ceiling of one analytics actor. Prints one line of key=value figures.
#include "actors/analytics_model.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

} // namespace

int main(int argc, char** argv) {
  const int64_t skus = argc > 1 ? std::atoll(argv[1]) : 100000;
  const int64_t events = argc > 2 ? std::atoll(argv[2]) : 2000000;
  const int64_t span_s = 3600; // the events spread over the last hour
  const int64_t t0 = 1'800'000'000;
  emporium::actors::analytics_model m;
  std::mt19937_64 rng{42};
  std::uniform_int_distribution<int64_t> sku_of{0, skus - 1};
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(skus));
  for (int64_t i = 0; i < skus; ++i)
    names.push_back("SKU" + std::to_string(i));
  auto rss0 = rss_kib();
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < events; ++i) {
    auto t = t0 + i * span_s / events;
    auto& sku = names[static_cast<size_t>(sku_of(rng))];
    switch (i % 10) { // a shop's mix: mostly views, some adds, a few paid orders
      case 0: case 1: case 2: case 3: case 4: case 5: m.viewed(sku, t); break;
      case 6: case 7: m.cart_add("cart" + std::to_string(i % 50000), sku, 1, t); break;
      case 8: m.checkout(t); break;
      default: m.paid({{sku, 1}, {names[static_cast<size_t>(sku_of(rng))], 1}}, t); break;
    }
  }
  auto ingest_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto rss1 = rss_kib();
  std::vector<double> trending_ms, recommend_ms;
  auto now = t0 + span_s;
  for (int q = 0; q < 50; ++q) {
    auto a = std::chrono::steady_clock::now();
    auto top = m.trending(now, 300, 10);
    auto b = std::chrono::steady_clock::now();
    auto rec = m.recommendations(names[static_cast<size_t>(sku_of(rng))], 5);
    auto c = std::chrono::steady_clock::now();
    trending_ms.push_back(std::chrono::duration<double, std::milli>(b - a).count());
    recommend_ms.push_back(std::chrono::duration<double, std::milli>(c - b).count());
    (void)top;
    (void)rec;
  }
  std::printf("analytics_model skus=%lld events=%lld ingest_eps=%.0f trending_p50_ms=%.2f "
              "trending_p99_ms=%.2f recommendations_p50_ms=%.4f recommendations_p99_ms=%.4f "
              "rss_per_sku_bytes=%.0f tracked=%zu\n",
              static_cast<long long>(skus), static_cast<long long>(events),
              static_cast<double>(events) / ingest_s, percentile(trending_ms, 0.5),
              percentile(trending_ms, 0.99), percentile(recommend_ms, 0.5),
              percentile(recommend_ms, 0.99),
              static_cast<double>(rss1 - rss0) * 1024.0 / static_cast<double>(skus),
              m.skus_tracked());
  return 0;
}
