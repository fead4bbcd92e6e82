#include "gateway/json_codec.hpp"

#include "protocols/envelope.hpp"
#include "protocols/ids.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cmath>

namespace emporium::gateway {

using namespace protocols;

namespace {

/// Where the first U+0000 is in `v` ("" if none), as a field path.
std::optional<std::string> find_nul(const json::value& v, const std::string& path) {
  auto join = [&path](std::string_view key) {
    return path.empty() ? std::string{key} : path + "." + std::string{key};
  };
  switch (v.kind()) {
    case json::kind::string:
      if (v.get_string().find('\0') != json::string::npos)
        return path;
      return std::nullopt;
    case json::kind::object:
      for (auto& kv : v.get_object()) {
        if (kv.key().find('\0') != std::string_view::npos)
          return path; // a key cannot be named: name its object
        if (auto at = find_nul(kv.value(), join(kv.key())))
          return at;
      }
      return std::nullopt;
    case json::kind::array: {
      auto& a = v.get_array();
      for (size_t i = 0; i < a.size(); ++i)
        if (auto at = find_nul(a[i], path + "[" + std::to_string(i) + "]"))
          return at;
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

bool known(std::string_view key, std::initializer_list<const char*> allowed) {
  for (auto* a : allowed)
    if (key == a)
      return true;
  return false;
}

} // namespace

std::variant<json::value, field_error> parse_json(std::string_view text) {
  json::error_code ec;
  json::parse_options opts;
  opts.max_depth = max_json_depth;
  auto v = json::parse(text, ec, {}, opts);
  if (ec == json::error::too_deep)
    return field_error{errc::bad_json, "",
                       "JSON nested deeper than " + std::to_string(max_json_depth) + " levels"};
  if (ec)
    return field_error{errc::bad_json, "", "body is not valid JSON"};
  if (auto at = find_nul(v, ""))
    return field_error{errc::invalid_field, *at,
                       (at->empty() ? std::string{"body"} : *at) + " must not contain U+0000"};
  return v;
}

std::variant<body_reader, field_error> body_reader::parse(std::string_view text,
                                                          std::initializer_list<const char*> allowed) {
  auto v = parse_json(text);
  if (auto* e = std::get_if<field_error>(&v))
    return std::move(*e);
  return read(std::move(std::get<json::value>(v)), allowed);
}

std::variant<body_reader, field_error> body_reader::read(json::value v,
                                                         std::initializer_list<const char*> allowed) {
  if (!v.is_object())
    return field_error{errc::bad_json, "", "body must be a JSON object"};
  for (auto& kv : v.as_object())
    if (!known(kv.key(), allowed))
      return field_error{errc::invalid_field, std::string{kv.key()}, "unknown field"};
  return body_reader{std::move(v.as_object())};
}

std::optional<int64_t> body_reader::integer(const char* name, bool required, int64_t lo, int64_t hi) {
  auto* v = field(name, required);
  if (v == nullptr)
    return std::nullopt;
  if (v->is_uint64() || (v->is_double() && std::abs(v->as_double()) >= 9.2e18))
    return fail(name, "is out of range (64-bit integer)");
  if (!v->is_int64())
    return fail(name, "must be an integer");
  auto x = v->as_int64();
  if (x < lo || x > hi)
    return fail(name, lo == 0 && x < 0 ? "must not be negative" : "is out of range");
  return x;
}

std::optional<std::string> body_reader::string(const char* name, bool required, bool id, size_t max) {
  auto* v = field(name, required);
  if (v == nullptr)
    return std::nullopt;
  if (!v->is_string())
    return fail(name, "must be a string");
  std::string s{v->as_string()};
  if (id && !valid_id(s))
    return fail(name, "is not a valid id");
  if (s.size() > max)
    return fail(name, "is too long");
  return s;
}

std::optional<body_reader> body_reader::object(const char* name, bool required,
                                               std::initializer_list<const char*> allowed) {
  auto* v = field(name, required);
  if (v == nullptr)
    return std::nullopt;
  if (!v->is_object())
    return fail(name, "must be an object");
  for (auto& kv : v->as_object())
    if (allowed.size() > 0 && !known(kv.key(), allowed)) {
      error = field_error{errc::invalid_field, prefix_ + name + "." + std::string{kv.key()},
                          "unknown field"};
      return std::nullopt;
    }
  return body_reader{v->as_object(), prefix_ + name + "."};
}

const json::value* body_reader::field(const char* name, bool required) {
  if (error)
    return nullptr;
  auto* v = obj_.if_contains(name);
  if (v == nullptr && required)
    fail(name, "is required");
  return v;
}

std::nullopt_t body_reader::fail(const char* name, const char* what) {
  if (!error)
    error = field_error{errc::invalid_field, prefix_ + name, prefix_ + name + " " + what};
  return std::nullopt;
}

// -- answers ------------------------------------------------------------------------

json::object level_json(const stock_level& l) {
  return {{"sku", l.sku},           {"warehouse", l.warehouse},
          {"on_hand", l.on_hand},   {"reserved", l.reserved},
          {"committed", l.committed}, {"available", l.available},
          {"low_stock_threshold", l.low_stock_threshold}, {"version", l.version},
          {"last_seq", l.last_seq}};
}

json::object sku_stock_json(const sku_stock& s) {
  json::array whs;
  for (auto& l : s.warehouses)
    whs.push_back(json::object{{"warehouse", l.warehouse},
                               {"on_hand", l.on_hand},
                               {"reserved", l.reserved},
                               {"available", l.available}});
  return {{"sku", s.sku}, {"available", s.available}, {"warehouses", std::move(whs)}};
}

json::object product_json(const product& p) {
  return {{"sku", p.sku},           {"name", p.name},         {"price_minor", p.price_minor},
          {"currency", p.currency}, {"category", p.category}, {"version", p.version}};
}

json::object cart_json(const cart_view& c) {
  json::array items;
  for (auto& l : c.items)
    items.push_back(json::object{{"sku", l.sku},
                                 {"quantity", l.quantity},
                                 {"unit_price_minor", l.unit_price_minor},
                                 {"line_total_minor", l.quantity * l.unit_price_minor}});
  return {{"cart_id", c.cart_id},
          {"owner", c.owner},
          {"status", c.status},
          {"items", std::move(items)},
          {"total_minor", c.total_minor},
          {"currency", c.currency},
          {"updated_at", rfc3339(c.updated_at_ms)},
          {"expires_at", rfc3339(c.expires_at_ms)},
          {"order_id", c.order_id.empty() ? json::value(nullptr) : json::value(c.order_id)}};
}

json::object order_json(const order_view& o) {
  json::array items;
  for (auto& l : o.items)
    items.push_back(json::object{{"sku", l.sku},
                                 {"quantity", l.quantity},
                                 {"unit_price_minor", l.unit_price_minor}});
  json::array allocs;
  for (auto& a : o.allocations)
    allocs.push_back(json::object{{"sku", a.sku},
                                  {"warehouse", a.warehouse},
                                  {"quantity", a.quantity},
                                  {"reservation_id", a.reservation_id}});
  json::object payment{{"method", o.payment_method}, {"status", o.payment_status}};
  if (!o.payment_provider.empty())
    payment["provider"] = o.payment_provider;
  if (!o.authorization_id.empty())
    payment["authorization_id"] = o.authorization_id;
  json::object out{{"order_id", o.order_id},
                   {"status", o.status},
                   {"owner", o.owner},
                   {"cart_id", o.cart_id},
                   {"items", std::move(items)},
                   {"allocations", std::move(allocs)},
                   {"payment", std::move(payment)},
                   {"total_minor", o.total_minor},
                   {"currency", o.currency},
                   {"created_at", rfc3339(o.created_at_ms)},
                   {"updated_at", rfc3339(o.updated_at_ms)}};
  if (!o.reason.empty())
    out["reason"] = o.reason;
  return out;
}

json::object reservation_json(const reservation& r) {
  json::array allocs;
  int64_t qty = 0;
  for (auto& a : r.allocations) {
    allocs.push_back(json::object{{"warehouse", a.warehouse}, {"quantity", a.quantity}});
    qty += a.quantity;
  }
  return {{"reservation_id", r.reservation_id}, {"sku", r.sku},
          {"quantity", qty},                    {"allocations", std::move(allocs)},
          {"expires_at", rfc3339(r.expires_at_ms)}, {"status", r.status}};
}

json::value event_json(const domain_event& e) {
  json::error_code ec;
  return json::parse(envelope_json(e), ec); // our own writer's output: always valid
}

// -- WebSocket frames -------------------------------------------------------------

std::variant<subscription, field_error> read_storefront_frame(std::string_view text) {
  auto parsed = body_reader::parse(text, {"op", "topic", "sku", "order_id"});
  if (auto* e = std::get_if<field_error>(&parsed))
    return *e;
  auto& b = std::get<body_reader>(parsed);
  auto op = b.string("op", true, false, 16);
  auto topic = b.string("topic", true, false, 16);
  if (b.error)
    return *b.error;
  if (*op != "subscribe" && *op != "unsubscribe")
    return field_error{errc::invalid_field, "op", "op must be subscribe or unsubscribe"};
  bool stock = *topic == "stock";
  if (!stock && *topic != "order")
    return field_error{errc::invalid_field, "topic", "topic must be stock or order"};
  const char* id_field = stock ? "sku" : "order_id";
  const char* other = stock ? "order_id" : "sku";
  auto id = b.string(id_field, true, true);
  if (!b.error && b.fields().contains(other))
    return field_error{errc::invalid_field, other,
                       std::string{"unknown field for topic "} + (stock ? "stock" : "order")};
  if (b.error)
    return *b.error;
  return subscription{*op == "subscribe", stock, std::move(*id)};
}

std::variant<warehouse_frame, field_error> read_warehouse_frame(std::string_view text,
                                                                size_t max_batch) {
  auto parsed = parse_json(text);
  if (auto* e = std::get_if<field_error>(&parsed))
    return *e;
  auto& v = std::get<json::value>(parsed);
  warehouse_frame out;
  if (!v.is_object() || !v.as_object().contains("batch")) {
    out.items.push_back(std::move(v));
    return out;
  }
  auto& o = v.as_object();
  if (o.size() != 1)
    return field_error{errc::invalid_field, "", "a batch frame has only \"batch\""};
  if (!o["batch"].is_array())
    return field_error{errc::invalid_field, "batch", "batch must be an array"};
  auto& items = o["batch"].as_array();
  if (items.size() > max_batch)
    return field_error{errc::too_large, "batch",
                       "at most " + std::to_string(max_batch) + " items per batch"};
  out.batch = true;
  out.items.reserve(items.size());
  for (auto& item : items)
    out.items.push_back(std::move(item));
  return out;
}

std::variant<push_item, field_error> read_push_item(json::value v, int64_t index,
                                                    json::object& where) {
  if (index >= 0)
    where["index"] = index;
  if (v.is_object()) {
    if (auto* s = v.as_object().if_contains("sku"); s && s->is_string())
      where["sku"] = *s;
    if (auto* s = v.as_object().if_contains("seq"); s && s->is_int64())
      where["seq"] = *s;
  }
  auto parsed = body_reader::read(std::move(v), {"sku", "on_hand", "seq", "low_stock_threshold"});
  if (auto* e = std::get_if<field_error>(&parsed))
    return *e;
  auto& b = std::get<body_reader>(parsed);
  auto sku = b.string("sku", true, true);
  auto on_hand = b.integer("on_hand", true, 0, INT64_MAX);
  auto seq = b.integer("seq", true, 0, INT64_MAX);
  auto threshold = b.integer("low_stock_threshold", false, 0, INT64_MAX);
  if (b.error)
    return *b.error;
  return push_item{std::move(*sku), *on_hand, *seq, threshold};
}

} // namespace emporium::gateway
