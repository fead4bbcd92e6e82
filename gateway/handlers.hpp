#pragma once

#include "gateway/exchange.hpp"

/// The handlers of the route table, grouped by resource (one file each):
/// thin translations of a checked request into one actor message and of the
/// answer into JSON. Access rules are the route table's; handlers see an
/// admitted caller.
namespace emporium::gateway::handlers {

// node_handlers.cpp: health, readiness, metrics, WebSocket upgrades
void healthz(exchange& x);
void readyz(exchange& x);
void metrics(exchange& x);
void storefront_ws(exchange& x);
void warehouse_ws(exchange& x);
void inject_failure(exchange& x);

// cluster_handlers.cpp: membership, shard owners, drain (ops)
void get_cluster(exchange& x);
void get_owner(exchange& x);
void drain_node(exchange& x);

// stock_handlers.cpp: pairs, SKUs, reservations
void get_pair(exchange& x);
void push_stock(exchange& x);
void adjust_stock(exchange& x);
void get_sku(exchange& x);
void reserve(exchange& x);
void get_reservation(exchange& x);
void release_reservation(exchange& x);

// product_handlers.cpp
void get_product(exchange& x);
void put_product(exchange& x);

// cart_handlers.cpp
void create_cart(exchange& x);
void get_cart(exchange& x);
void set_cart_item(exchange& x);
void remove_cart_item(exchange& x);
void checkout(exchange& x);

// order_handlers.cpp
void get_order(exchange& x);
void get_order_events(exchange& x);
void cancel_order(exchange& x);
void ship_order(exchange& x);
void deliver_order(exchange& x);
void return_order(exchange& x);

/// The Idempotency-Key header, or nullopt after 400 when it is too long.
std::optional<std::string_view> idempotency_key(exchange& x);

} // namespace emporium::gateway::handlers
