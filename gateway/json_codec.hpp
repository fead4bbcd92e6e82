#pragma once

#include "protocols/commerce.hpp"
#include "protocols/errc.hpp"
#include "protocols/inventory.hpp"
#include "protocols/orders.hpp"
#include "protocols/store.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

/// The gateway's one JSON codec: every request body and WebSocket frame is
/// read here, every answer written here. Nothing in it throws.
namespace emporium::gateway {

namespace json = boost::json;

/// A refusal of input, with the field it is about ("payment.token",
/// "batch[2].sku"; empty: the whole body). Answered 400.
struct field_error {
  errc code;
  std::string field;
  std::string message;
};

/// Deepest nesting a body or frame may have.
constexpr int max_json_depth = 8;

/// Parses `text` strictly: not JSON, nested deeper than max_json_depth, or
/// holding U+0000 in any string or key (PostgreSQL cannot store it; it is
/// refused here, naming where) is a field_error.
std::variant<json::value, field_error> parse_json(std::string_view text);

/// Strict reader of one JSON object: unknown fields, wrong types, numbers
/// outside int64 and ids outside the contract's pattern are field errors.
/// The first error is kept in `error`; reads after it return nullopt.
class body_reader {
public:
  /// `text` as an object of `allowed` fields.
  static std::variant<body_reader, field_error> parse(std::string_view text,
                                                      std::initializer_list<const char*> allowed);

  /// The same for a value already parsed (an item of a batch).
  static std::variant<body_reader, field_error> read(json::value v,
                                                     std::initializer_list<const char*> allowed);

  /// An integer in [lo, hi]; absent is allowed unless `required`.
  std::optional<int64_t> integer(const char* name, bool required, int64_t lo, int64_t hi);

  /// A string of at most `max` bytes; `id` checks the contract's id pattern.
  std::optional<std::string> string(const char* name, bool required, bool id, size_t max = 256);

  /// A nested object of `allowed` fields (any field if empty), read as
  /// strictly; its fields are named "name.field" in errors.
  std::optional<body_reader> object(const char* name, bool required,
                                    std::initializer_list<const char*> allowed);

  const json::object& fields() const { return obj_; }

  std::optional<field_error> error;

private:
  explicit body_reader(json::object obj, std::string prefix = {})
    : obj_(std::move(obj)), prefix_(std::move(prefix)) {
  }
  /// The field, or nullptr (after recording "is required" if it is).
  const json::value* field(const char* name, bool required);
  std::nullopt_t fail(const char* name, const char* what);
  json::object obj_;
  std::string prefix_; ///< "payment." inside a nested object
};

// -- WebSocket frames -------------------------------------------------------------

/// A storefront client frame: subscribe to or unsubscribe from one topic.
struct subscription {
  bool subscribe = true;
  bool stock = true;  ///< topic stock (id: a SKU) or order (id: an order id)
  std::string id;
};

/// `{"op","topic","sku"|"order_id"}` strictly (docs/api.md "Storefront").
std::variant<subscription, field_error> read_storefront_frame(std::string_view text);

/// A warehouse frame's push items, not yet read: one item, or the items of
/// `{"batch":[...]}` (at most `max_batch`, else too_large: refused whole).
struct warehouse_frame {
  std::vector<json::value> items;
  bool batch = false; ///< errors name an item by its index
};
std::variant<warehouse_frame, field_error> read_warehouse_frame(std::string_view text,
                                                                size_t max_batch);

/// One pushed level.
struct push_item {
  std::string sku;
  int64_t on_hand = 0;
  int64_t seq = 0;
  std::optional<int64_t> threshold;
};

/// `{"sku","on_hand","seq"[,"low_stock_threshold"]}` strictly. `where` is
/// filled with what names the item in an error frame, as far as it can be
/// named: its `index` in a batch (>= 0), its `sku` and `seq`.
std::variant<push_item, field_error> read_push_item(json::value v, int64_t index,
                                                    json::object& where);

// -- answers ------------------------------------------------------------------------

json::object level_json(const protocols::stock_level& l);
json::object sku_stock_json(const protocols::sku_stock& s);
json::object product_json(const protocols::product& p);
json::object cart_json(const protocols::cart_view& c);
json::object order_json(const protocols::order_view& o);
json::object reservation_json(const protocols::reservation& r);
/// An event in the contract's envelope (the writer the Kafka relay uses too).
json::value event_json(const protocols::domain_event& e);

} // namespace emporium::gateway
