#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

/// The process-wide Prometheus registry. Each folder builds its own families
/// from it once and keeps pointers to the series it updates (no lookups on the
/// hot path); /metrics serializes it.
namespace emporium::protocols::metrics {

prometheus::Registry& registry();

/// Prometheus text exposition of everything registered.
std::string serialize();

/// Latency buckets in seconds, 100 us .. 5 s.
const prometheus::Histogram::BucketBoundaries& latency_buckets();

/// Live actors by kind (`emporium_actors{kind}`).
prometheus::Gauge& actors(const std::string& kind);

} // namespace emporium::protocols::metrics
