#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
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

/// Crashes answered by a restart, by actor kind
/// (`emporium_actor_restarts_total{kind}`: entities by their kind, supervised
/// actors by theirs). Rare: callers need not keep the series.
prometheus::Counter& restarts(const std::string& kind);

/// Samples a hot actor's own mailbox depth into
/// `emporium_mailbox_depth{actor}` on every `every`-th call of tick() (a
/// mailbox can only be measured by its owner; sampling keeps it off the
/// per-message cost).
class mailbox_sampler {
public:
  explicit mailbox_sampler(const std::string& actor, uint32_t every = 256);
  /// For actors that are many (one per pair): the series looked up once.
  explicit mailbox_sampler(prometheus::Gauge& depth, uint32_t every = 256)
    : depth_(&depth), every_(std::max<uint32_t>(1, every)) {}
  /// The `emporium_mailbox_depth{actor}` series.
  static prometheus::Gauge& series(const std::string& actor);
  template <class Self>
  void tick(Self* self) {
    if (++calls_ % every_ == 0)
      depth_->Set(static_cast<double>(self->mailbox().size()));
  }

private:
  prometheus::Gauge* depth_;
  uint32_t every_;
  uint32_t calls_ = 0;
};

} // namespace emporium::protocols::metrics
