#include "protocols/metrics.hpp"

#include <prometheus/text_serializer.h>

#include <algorithm>

namespace emporium::protocols::metrics {

prometheus::Registry& registry() {
  static prometheus::Registry instance;
  return instance;
}

std::string serialize() {
  return prometheus::TextSerializer{}.Serialize(registry().Collect());
}

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01,   0.025,   0.05,   0.1,   0.25,   0.5, 1, 2.5, 5};
  return buckets;
}

prometheus::Gauge& actors(const std::string& kind) {
  static auto& family = prometheus::BuildGauge()
                          .Name("emporium_actors")
                          .Help("Live actors by kind")
                          .Register(registry());
  return family.Add({{"kind", kind}});
}

mailbox_sampler::mailbox_sampler(const std::string& actor, uint32_t every)
  : depth_(&series(actor)), every_(std::max<uint32_t>(1, every)) {
}

prometheus::Gauge& mailbox_sampler::series(const std::string& actor) {
  static auto& family = prometheus::BuildGauge()
                          .Name("emporium_mailbox_depth")
                          .Help("Messages waiting in a hot actor's mailbox, sampled every 256th "
                                "message it takes (stock_pair: whichever pair sampled last; only "
                                "a busy pair takes 256 messages often)")
                          .Register(registry());
  return family.Add({{"actor", actor}});
}

prometheus::Counter& restarts(const std::string& kind) {
  static auto& family = prometheus::BuildCounter()
                          .Name("emporium_actor_restarts_total")
                          .Help("Actors restarted after a crash, by kind")
                          .Register(registry());
  return family.Add({{"kind", kind}});
}

} // namespace emporium::protocols::metrics
