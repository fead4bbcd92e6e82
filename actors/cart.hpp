#pragma once

#include "protocols/actors.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <string>

namespace emporium::actors {

struct cart_config {
  std::string node = "local";
  std::chrono::seconds ttl = std::chrono::hours{24 * 7}; ///< idle time before a cart expires
  int64_t line_limit = 50;                                ///< largest quantity of one line
  protocols::entity_resolver resolve; ///< reaches "product:SKU" and "order:ID"
  protocols::fence under;             ///< the shard epoch its writes are made under
};

/// Spawns the entity actor of one cart ("cart:ID"). It recovers the cart
/// before anything else and handles one command at a time (each write and
/// product lookup is awaited). Every change is durable before the reply.
/// - create_cart -> cart_view: creates it for `owner`; a repeat by the same
///   owner answers the cart as is, another owner gets `conflict`;
/// - get_cart -> cart_view; set_cart_item -> cart_view (quantity 0 removes,
///   the price is the product's at that moment; lines of one currency only);
///   only the owner or ops (the command's `ops`) may read or change it, others
///   get `forbidden`; a cart that is not open refuses changes (`invalid_state`);
/// - a cart untouched for `ttl` expires (event cart_expired): by its own timer
///   while it runs, at recovery when it expired meanwhile; then `not_found`;
/// - checkout_cart -> order_view: re-checks every price (a changed one updates
///   the cart and answers `conflict`), places the order "order:ord_<cart>-<version>"
///   and closes the cart (checked_out). Checking out a closed cart again answers
///   its order: a checkout is idempotent with or without an Idempotency-Key.
/// `home`: the router hosting it (see leave_when_unused), none in unit tests.
caf::actor spawn_cart(caf::actor_system& sys, std::string cart_id, protocols::store_actor store,
                      cart_config cfg, caf::actor home = {});

} // namespace emporium::actors
