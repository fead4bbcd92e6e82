#include "gateway/json_codec.hpp"

#include <boost/json/parse.hpp>
#include <doctest/doctest.h>

#include <string>

using namespace emporium;
using namespace emporium::gateway;

namespace {

body_reader reader(std::string_view text, std::initializer_list<const char*> allowed) {
  auto r = body_reader::parse(text, allowed);
  REQUIRE(std::holds_alternative<body_reader>(r));
  return std::get<body_reader>(std::move(r));
}

field_error refusal(std::string_view text, std::initializer_list<const char*> allowed = {"a"}) {
  auto r = body_reader::parse(text, allowed);
  REQUIRE(std::holds_alternative<field_error>(r));
  return std::get<field_error>(r);
}

} // namespace

TEST_CASE("a body that is not a JSON object is bad_json") {
  CHECK(refusal("{").code == errc::bad_json);
  CHECK(refusal("").code == errc::bad_json);
  CHECK(refusal("[1]").code == errc::bad_json);
  CHECK(refusal("\"a\"").code == errc::bad_json);
  CHECK(refusal(R"({"a":1} x)").code == errc::bad_json);
}

TEST_CASE("an unknown field is refused by name") {
  auto e = refusal(R"({"a":1,"b":2})");
  CHECK(e.code == errc::invalid_field);
  CHECK(e.field == "b");
}

TEST_CASE("integers are int64 and within their range") {
  auto b = reader(R"({"q":5,"neg":-1,"big":18446744073709551615,"f":1.5,"s":"5","huge":1e19})",
                  {"q", "neg", "big", "f", "s", "huge", "none"});
  CHECK(b.integer("q", true, 1, 10) == 5);
  CHECK_FALSE(b.error);
  CHECK(b.integer("none", false, 0, 1) == std::nullopt);
  CHECK_FALSE(b.error);
  for (auto [name, why] : {std::pair{"neg", "neg must not be negative"},
                           std::pair{"big", "big is out of range (64-bit integer)"},
                           std::pair{"f", "f must be an integer"},
                           std::pair{"s", "s must be an integer"},
                           std::pair{"huge", "huge is out of range (64-bit integer)"},
                           std::pair{"none", "none is required"}}) {
    auto r = reader(R"({"q":5,"neg":-1,"big":18446744073709551615,"f":1.5,"s":"5","huge":1e19})",
                    {"q", "neg", "big", "f", "s", "huge", "none"});
    CHECK_FALSE(r.integer(name, true, 0, INT64_MAX));
    REQUIRE(r.error);
    CHECK(r.error->field == name);
    CHECK(r.error->message == why);
  }
  auto edge = reader(R"({"min":-9223372036854775808,"max":9223372036854775807})", {"min", "max"});
  CHECK(edge.integer("min", true, INT64_MIN, INT64_MAX) == INT64_MIN);
  CHECK(edge.integer("max", true, INT64_MIN, INT64_MAX) == INT64_MAX);
}

TEST_CASE("strings are typed, bounded, and ids follow the contract's pattern") {
  auto b = reader(R"({"id":"S-1.a:b","bad":"-x","n":3,"long":"abcdef"})", {"id", "bad", "n", "long"});
  CHECK(b.string("id", true, true) == "S-1.a:b");
  CHECK_FALSE(b.string("bad", true, true));
  CHECK(b.error->field == "bad");
  auto c = reader(R"({"n":3})", {"n"});
  CHECK_FALSE(c.string("n", true, false));
  CHECK(c.error->message == "n must be a string");
  auto d = reader(R"({"long":"abcdef"})", {"long"});
  CHECK_FALSE(d.string("long", true, false, 5));
  CHECK(d.error->message == "long is too long");
}

TEST_CASE("U+0000 anywhere is refused naming where, never passed on") {
  auto top = refusal(R"({"a":"x\u0000y"})");
  CHECK(top.code == errc::invalid_field);
  CHECK(top.field == "a");
  auto nested = refusal(R"({"a":{"city":"B\u0000"}})");
  CHECK(nested.field == "a.city");
  auto in_list = refusal(R"({"a":[{"sku":"ok"},{"sku":"\u0000"}]})");
  CHECK(in_list.field == "a[1].sku");
  auto key = refusal(R"({"a":{"k\u0000":"v"}})");
  CHECK(key.field == "a");
  auto frame = parse_json(R"({"batch":[{"sku":"S\u0000"}]})");
  REQUIRE(std::holds_alternative<field_error>(frame));
  CHECK(std::get<field_error>(frame).field == "batch[0].sku");
}

TEST_CASE("nesting deeper than the limit is refused, up to it is read") {
  std::string ok = "{\"a\":" + std::string(max_json_depth - 1, '[') + std::string(max_json_depth - 1, ']') + "}";
  CHECK(std::holds_alternative<body_reader>(body_reader::parse(ok, {"a"})));
  std::string deep = "{\"a\":" + std::string(max_json_depth, '[') + std::string(max_json_depth, ']') + "}";
  auto e = refusal(deep);
  CHECK(e.code == errc::bad_json);
  CHECK(e.message.find("nested") != std::string::npos);
}

TEST_CASE("a nested object is read as strictly, its fields named with a prefix") {
  auto b = reader(R"({"payment":{"method":"card","token":7}})", {"payment"});
  auto p = b.object("payment", true, {"method", "token"});
  REQUIRE(p);
  CHECK(p->string("method", true, false) == "card");
  CHECK_FALSE(p->string("token", true, false));
  CHECK(p->error->field == "payment.token");
  auto unknown = reader(R"({"payment":{"x":1}})", {"payment"});
  CHECK_FALSE(unknown.object("payment", true, {"method"}));
  CHECK(unknown.error->field == "payment.x");
  auto not_object = reader(R"({"payment":1})", {"payment"});
  CHECK_FALSE(not_object.object("payment", true, {}));
  CHECK(not_object.error->field == "payment");
}

TEST_CASE("the first error is kept; later reads return nothing") {
  auto b = reader(R"({"a":"x","b":2})", {"a", "b"});
  CHECK_FALSE(b.integer("a", true, 0, 9));
  CHECK_FALSE(b.integer("b", true, 0, 9)); // valid, but an error came first
  CHECK(b.error->field == "a");
}

TEST_CASE("storefront frames: a subscription per topic, everything else refused by field") {
  auto sub = std::get<subscription>(read_storefront_frame(R"({"op":"subscribe","topic":"stock","sku":"S1"})"));
  CHECK((sub.subscribe && sub.stock && sub.id == "S1"));
  sub = std::get<subscription>(read_storefront_frame(R"({"op":"unsubscribe","topic":"order","order_id":"o-1"})"));
  CHECK((!sub.subscribe && !sub.stock && sub.id == "o-1"));
  auto field = [](std::string_view text) {
    auto r = read_storefront_frame(text);
    REQUIRE(std::holds_alternative<field_error>(r));
    return std::get<field_error>(r).field;
  };
  CHECK(field(R"({"op":"watch","topic":"stock","sku":"S1"})") == "op");
  CHECK(field(R"({"op":"subscribe","topic":"price","sku":"S1"})") == "topic");
  CHECK(field(R"({"op":"subscribe","topic":"stock"})") == "sku");
  CHECK(field(R"({"op":"subscribe","topic":"stock","sku":"S1","order_id":"o1"})") == "order_id");
  CHECK(field(R"({"op":"subscribe","topic":"order","order_id":"o1","sku":"S1"})") == "sku");
  CHECK(field(R"({"op":"subscribe","topic":"stock","sku":"bad id!"})") == "sku");
  CHECK(std::get<field_error>(read_storefront_frame("[1]")).code == errc::bad_json);
}

TEST_CASE("warehouse frames: one item or a bounded batch, each item read strictly and named") {
  auto one = std::get<warehouse_frame>(read_warehouse_frame(R"({"sku":"S1","on_hand":3,"seq":1})", 2));
  CHECK((!one.batch && one.items.size() == 1));
  auto batch = std::get<warehouse_frame>(read_warehouse_frame(R"({"batch":[{},{}]})", 2));
  CHECK((batch.batch && batch.items.size() == 2));
  auto big = std::get<field_error>(read_warehouse_frame(R"({"batch":[{},{},{}]})", 2));
  CHECK((big.code == errc::too_large && big.field == "batch"));
  CHECK(std::get<field_error>(read_warehouse_frame(R"({"batch":{}})", 2)).field == "batch");
  CHECK(std::get<field_error>(read_warehouse_frame(R"({"batch":[],"x":1})", 2)).code == errc::invalid_field);

  json::object where;
  auto item = read_push_item(json::parse(R"({"sku":"S1","on_hand":5,"seq":9,"low_stock_threshold":2})"), 3, where);
  auto& p = std::get<push_item>(item);
  CHECK((p.sku == "S1" && p.on_hand == 5 && p.seq == 9 && p.threshold == 2));
  CHECK(where.at("index").as_int64() == 3);
  where.clear();
  auto bad = read_push_item(json::parse(R"({"sku":"S1","on_hand":-1,"seq":9})"), -1, where);
  CHECK(std::get<field_error>(bad).field == "on_hand");
  CHECK((!where.contains("index") && where.at("sku").as_string() == "S1" && where.at("seq").as_int64() == 9));
}
