#pragma once

#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

/// Catalog and cart messages. Products and carts are entities reached through
/// the router ("product:SKU", "cart:ID"); money is in integer minor units.
namespace emporium::protocols {

struct product {
  std::string sku;
  std::string name;
  int64_t price_minor = 0;
  std::string currency; ///< ISO 4217, e.g. "EUR"
  std::string category;
  int64_t version = 0; ///< 0: no such product
  bool operator==(const product&) const = default;
};

/// Creates or replaces a product (ops). Answers the stored product once durable.
struct put_product {
  product value; ///< version ignored
  std::string user_id;
  std::string correlation_id;
  bool operator==(const put_product&) const = default;
};

/// -> product (not_found when none).
struct get_product {
  bool operator==(const get_product&) const = default;
};

struct cart_line {
  std::string sku;
  int64_t quantity = 0;
  int64_t unit_price_minor = 0; ///< the product's price when the line was last set
  bool operator==(const cart_line&) const = default;
};

/// A cart as the API shows it. status: "open", "checked_out", "expired".
struct cart_view {
  std::string cart_id;
  std::string owner;
  std::string status;
  std::vector<cart_line> items; ///< in the order they were added
  int64_t total_minor = 0;
  std::string currency; ///< of the first line's product; empty while empty
  int64_t updated_at_ms = 0;
  int64_t expires_at_ms = 0; ///< when it expires unless touched
  int64_t version = 0;
  std::string order_id; ///< set by a successful checkout
  bool operator==(const cart_view&) const = default;
};

/// Creates the cart for `owner` (idempotent for the same owner) -> cart_view.
struct create_cart {
  std::string owner;
  std::string correlation_id;
  bool operator==(const create_cart&) const = default;
};

/// -> cart_view (not_found when there is none or it expired; forbidden
/// unless `user_id` owns it or `ops`).
struct get_cart {
  std::string user_id;
  bool ops = false;
  bool operator==(const get_cart&) const = default;
};

/// Sets a line's quantity (0 removes it) at the product's current price -> cart_view.
struct set_cart_item {
  std::string sku;
  int64_t quantity = 0;
  std::string user_id;
  bool ops = false;
  std::string correlation_id;
  bool operator==(const set_cart_item&) const = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, product& x) {
  return f(caf::meta::type_name("product"), x.sku, x.name, x.price_minor, x.currency, x.category,
           x.version);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, put_product& x) {
  return f(caf::meta::type_name("put_product"), x.value, x.user_id, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_product&) {
  return f(caf::meta::type_name("get_product"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cart_line& x) {
  return f(caf::meta::type_name("cart_line"), x.sku, x.quantity, x.unit_price_minor);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cart_view& x) {
  return f(caf::meta::type_name("cart_view"), x.cart_id, x.owner, x.status, x.items,
           x.total_minor, x.currency, x.updated_at_ms, x.expires_at_ms, x.version, x.order_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_cart& x) {
  return f(caf::meta::type_name("create_cart"), x.owner, x.correlation_id);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, get_cart& x) {
  return f(caf::meta::type_name("get_cart"), x.user_id, x.ops);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, set_cart_item& x) {
  return f(caf::meta::type_name("set_cart_item"), x.sku, x.quantity, x.user_id, x.ops,
           x.correlation_id);
}

} // namespace emporium::protocols
