// The Kafka event envelope writer (protocols/envelope). Oracle: for any event
// the system can make (UTF-8 strings, data that is a JSON object, a time
// between 1970 and 9999) the envelope is JSON that a strict parser reads back
// to the same fields.
#include "protocols/envelope.hpp"

#include <boost/json/parse.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

using namespace emporium::protocols;
namespace json = boost::json;

namespace {

bool utf8(std::string_view s) {
  json::error_code ec;
  std::string quoted = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      quoted += ' '; // only the encoding is checked here
    else
      quoted += c;
  }
  quoted += '"';
  json::parse(quoted, ec);
  return !ec;
}

} // namespace

// Input: the fields separated by '\0': id, type, aggregate id, aggregate type,
// data, correlation, causation, user, node; then 16 bytes of version and time.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 16)
    return 0;
  int64_t nums[2];
  __builtin_memcpy(nums, data + size - 16, 16);
  std::string_view text{reinterpret_cast<const char*>(data), size - 16};
  std::vector<std::string> f;
  while (f.size() < 9) {
    auto z = text.find('\0');
    f.emplace_back(text.substr(0, z));
    text = z == std::string_view::npos ? std::string_view{} : text.substr(z + 1);
  }
  for (auto& s : f)
    if (!utf8(s))
      return 0;
  json::error_code ec;
  auto d = json::parse(f[4], ec);
  if (ec || !d.is_object())
    f[4].clear();
  domain_event e{f[0], f[1], f[2], f[3], nums[0],
                 static_cast<int64_t>(static_cast<uint64_t>(nums[1]) % 253402300800000ULL),
                 f[4], f[5], f[6], f[7], f[8]};
  auto out = json::parse(envelope_json(e), ec);
  if (ec || !out.is_object())
    std::abort();
  auto& o = out.as_object();
  auto& meta = o.at("metadata").as_object();
  if (o.at("eventId").as_string() != e.event_id || o.at("eventType").as_string() != e.event_type
      || o.at("aggregateId").as_string() != e.aggregate_id
      || o.at("aggregateType").as_string() != e.aggregate_type
      || o.at("eventVersion").as_int64() != e.event_version || !o.at("data").is_object()
      || o.at("eventTime").as_string().size() != 24
      || meta.at("correlationId").as_string() != e.correlation_id
      || meta.at("causationId").as_string() != e.causation_id
      || meta.at("userId").as_string() != e.user_id || meta.at("node").as_string() != e.node)
    std::abort();
  return 0;
}
