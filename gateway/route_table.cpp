// Every route the node serves: method, pattern, who may call it, handler.
#include "gateway/handlers.hpp"
#include "gateway/routes.hpp"

namespace emporium::gateway {

const std::vector<route>& route_table() {
  using m = method;
  using a = access;
  namespace h = handlers;
  static const std::vector<route> table{
    {m::get, "/healthz", a::anyone, h::healthz},
    {m::get, "/readyz", a::anyone, h::readyz},
    {m::get, "/metrics", a::anyone, h::metrics},
    // cluster (ops)
    {m::get, "/v1/cluster", a::ops, h::get_cluster},
    {m::get, "/v1/cluster/owner", a::ops, h::get_owner},
    {m::post, "/v1/cluster/nodes/{node_id}/drain", a::ops, h::drain_node},
    // tests: the failure-injection hook (404 unless the node enables it)
    {m::post, "/v1/debug/crash", a::ops, h::inject_failure},
    // WebSockets (docs/api.md): the storefront's topics decide per subscription
    {m::get, "/v1/ws", a::optional_token, h::storefront_ws},
    {m::get, "/v1/warehouses/{warehouse}/ws", a::warehouse_or_ops, h::warehouse_ws},
    // inventory
    {m::get, "/v1/warehouses/{warehouse}/stock/{sku}", a::warehouse_or_ops, h::get_pair},
    {m::put, "/v1/warehouses/{warehouse}/stock/{sku}", a::warehouse_or_ops, h::push_stock},
    {m::post, "/v1/warehouses/{warehouse}/stock/{sku}/adjust", a::warehouse_or_ops, h::adjust_stock},
    {m::get, "/v1/stock/{sku}", a::anyone, h::get_sku},
    {m::post, "/v1/reservations", a::customer_or_ops, h::reserve},
    {m::get, "/v1/reservations/{reservation_id}", a::customer_or_ops, h::get_reservation},
    {m::delete_, "/v1/reservations/{reservation_id}", a::customer_or_ops, h::release_reservation},
    // products
    {m::get, "/v1/products/{sku}", a::signed_in, h::get_product},
    {m::put, "/v1/products/{sku}", a::ops, h::put_product},
    // carts (the cart decides who owns it)
    {m::post, "/v1/carts", a::customer_or_ops, h::create_cart},
    {m::get, "/v1/carts/{cart_id}", a::signed_in, h::get_cart},
    {m::put, "/v1/carts/{cart_id}/items/{sku}", a::signed_in, h::set_cart_item},
    {m::delete_, "/v1/carts/{cart_id}/items/{sku}", a::signed_in, h::remove_cart_item},
    {m::post, "/v1/carts/{cart_id}/checkout", a::customer_or_ops, h::checkout},
    // orders (the order decides who may read or act, and when)
    {m::get, "/v1/orders/{order_id}", a::signed_in, h::get_order},
    {m::get, "/v1/orders/{order_id}/events", a::signed_in, h::get_order_events},
    {m::post, "/v1/orders/{order_id}/cancel", a::signed_in, h::cancel_order},
    {m::post, "/v1/orders/{order_id}/ship", a::signed_in, h::ship_order},
    {m::post, "/v1/orders/{order_id}/deliver", a::signed_in, h::deliver_order},
    {m::post, "/v1/orders/{order_id}/return", a::signed_in, h::return_order},
  };
  return table;
}

} // namespace emporium::gateway
