#pragma once

#include "protocols/commerce.hpp"
#include "protocols/inventory.hpp"
#include "protocols/orders.hpp"
#include "protocols/store.hpp"

#include <caf/actor.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <string_view>
#include <vector>

/// How entities are named and what each message to one answers: values
/// only. The way to reach one (by key, with a deadline) is cluster/'s.
namespace emporium::protocols {

/// The kinds of entity. The only place their names are spelled.
enum class entity_kind : uint8_t { sku, product, cart, order, reservation };

/// "sku", "product", "cart", "order", "reservation".
std::string_view kind_name(entity_kind k) noexcept;

/// One entity: a SKU (with its pairs), a product, a cart, an order, or a
/// reservation (which finds its SKU). Shards are a function of the key.
struct entity_key {
  entity_kind kind = entity_kind::sku;
  std::string id;
  /// "kind:id", as shards hash it and logs show it.
  std::string str() const;
  bool operator==(const entity_key&) const = default;
};

inline entity_key sku_key(std::string id) {
  return {entity_kind::sku, std::move(id)};
}
inline entity_key product_key(std::string id) {
  return {entity_kind::product, std::move(id)};
}
inline entity_key cart_key(std::string id) {
  return {entity_kind::cart, std::move(id)};
}
inline entity_key order_key(std::string id) {
  return {entity_kind::order, std::move(id)};
}
inline entity_key reservation_key(std::string id) {
  return {entity_kind::reservation, std::move(id)};
}

/// A command for one SKU x warehouse pair, sent to its SKU entity: the SKU
/// hands `cmd` to the pair of `warehouse` (push and adjust create it).
template <class Cmd>
struct at_pair {
  std::string warehouse;
  Cmd cmd;
  bool operator==(const at_pair&) const = default;
};

template <class Inspector, class Cmd>
typename Inspector::result_type inspect(Inspector& f, at_pair<Cmd>& x) {
  return f(caf::meta::type_name("at_pair"), x.warehouse, x.cmd);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, entity_key& x) {
  return f(caf::meta::type_name("entity_key"), x.kind, x.id);
}

/// What an entity answers to a message: response_of<Msg>::type. A message
/// without an entry cannot be asked (it does not compile).
template <class Msg>
struct response_of;

template <class Msg>
using response_of_t = typename response_of<Msg>::type;

/// Whether an entity answers `Msg` (it has a response_of entry).
template <class Msg, class = void>
struct answered : std::false_type {};
template <class Msg>
struct answered<Msg, std::void_t<typename response_of<Msg>::type>> : std::true_type {};

#define EMPORIUM_RESPONSE(msg, reply)                                                           \
  template <>                                                                                  \
  struct response_of<msg> {                                                                    \
    using type = reply;                                                                        \
  }

// sku: the SKU itself and, through at_pair, its pairs
EMPORIUM_RESPONSE(get_sku_stock, sku_stock);
EMPORIUM_RESPONSE(reserve_any, reservation);
EMPORIUM_RESPONSE(get_reservation, reservation);
EMPORIUM_RESPONSE(release_reservation, reservation);
EMPORIUM_RESPONSE(at_pair<push_stock_level>, stock_result);
EMPORIUM_RESPONSE(at_pair<adjust_stock>, stock_result);
EMPORIUM_RESPONSE(at_pair<reserve_stock>, stock_result);
EMPORIUM_RESPONSE(at_pair<release_stock>, stock_result);
EMPORIUM_RESPONSE(at_pair<commit_stock>, stock_result);
EMPORIUM_RESPONSE(at_pair<fulfil_stock>, stock_result);
EMPORIUM_RESPONSE(at_pair<extend_hold>, stock_result);
EMPORIUM_RESPONSE(at_pair<get_stock_level>, stock_level);
EMPORIUM_RESPONSE(at_pair<get_hold>, hold_view);
// product
EMPORIUM_RESPONSE(get_product, product);
EMPORIUM_RESPONSE(put_product, product);
// cart
EMPORIUM_RESPONSE(create_cart, cart_view);
EMPORIUM_RESPONSE(get_cart, cart_view);
EMPORIUM_RESPONSE(set_cart_item, cart_view);
EMPORIUM_RESPONSE(checkout_cart, order_view);
// order
EMPORIUM_RESPONSE(place_order, order_view);
EMPORIUM_RESPONSE(get_order, order_view);
EMPORIUM_RESPONSE(get_order_events, std::vector<domain_event>);
EMPORIUM_RESPONSE(order_action, order_view);
// reservation (found by id; answers for its SKU)
EMPORIUM_RESPONSE(find_reservation, reservation);
EMPORIUM_RESPONSE(drop_reservation, reservation);

#undef EMPORIUM_RESPONSE

/// The actor that routes messages for `key` (the router's shard actor).
/// Entities reach each other only through this, never by keeping handles.
using entity_resolver = std::function<caf::actor(const entity_key& key)>;

} // namespace emporium::protocols
