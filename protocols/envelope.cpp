#include "protocols/envelope.hpp"

#include <cstdio>
#include <ctime>

namespace emporium::protocols {

std::string rfc3339(int64_t ms) {
  std::time_t secs = ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

std::string envelope_json(const domain_event& e) {
  std::string out;
  out.reserve(256 + e.data_json.size());
  auto field = [&out](std::string_view name, std::string_view value) {
    out += out.size() > 1 ? ",\"" : "\"";
    out += name;
    out += "\":";
    append_json_string(out, value);
  };
  out += '{';
  field("eventId", e.event_id);
  field("eventType", e.event_type);
  field("aggregateId", e.aggregate_id);
  field("aggregateType", e.aggregate_type);
  out += ",\"eventVersion\":" + std::to_string(e.event_version);
  field("eventTime", rfc3339(e.event_time_ms));
  out += ",\"data\":";
  out += e.data_json.empty() ? std::string_view{"{}"} : std::string_view{e.data_json};
  out += ",\"metadata\":{\"correlationId\":";
  append_json_string(out, e.correlation_id);
  out += ",\"causationId\":";
  append_json_string(out, e.causation_id);
  out += ",\"userId\":";
  append_json_string(out, e.user_id);
  out += ",\"node\":";
  append_json_string(out, e.node);
  out += "}}";
  return out;
}

std::string_view topic_for(std::string_view aggregate_type) noexcept {
  if (aggregate_type == "stock" || aggregate_type == "product")
    return "inventory";
  if (aggregate_type == "cart")
    return "carts";
  if (aggregate_type == "order")
    return "orders";
  return "analytics";
}

} // namespace emporium::protocols
