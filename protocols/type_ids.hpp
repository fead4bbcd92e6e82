#pragma once

#include "protocols/commerce.hpp"
#include "protocols/inventory.hpp"
#include "protocols/store.hpp"

#include <caf/type_id.hpp>

// The project's one type-id block: every message that may cross the network.
// Register on every node with cfg.add_message_types<caf::id_block::emporium>().
CAF_BEGIN_TYPE_ID_BLOCK(emporium, caf::first_custom_type_id)

CAF_ADD_TYPE_ID(emporium, (emporium::protocols::stock_level))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::hold_view))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::stock_result))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::push_stock_level))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::adjust_stock))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::reserve_stock))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::release_stock))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::commit_stock))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::fulfil_stock))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::extend_hold))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::get_stock_level))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::get_hold))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::sku_stock))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::allocation))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::reservation))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::reserve_any))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::get_sku_stock))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::get_reservation))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::release_reservation))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::domain_event))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::pair_snapshot))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::stock_batch))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::load_sku))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::sku_snapshot))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::locate_reservation))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::reservation_rows))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::entity_record))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::entity_write))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::load_entity))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::product))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::put_product))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::get_product))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::cart_line))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::cart_view))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::create_cart))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::get_cart))
CAF_ADD_TYPE_ID(emporium, (emporium::protocols::set_cart_item))
CAF_ADD_TYPE_ID(emporium, (std::vector<emporium::protocols::cart_line>))
CAF_ADD_TYPE_ID(emporium, (std::vector<emporium::protocols::stock_level>))
CAF_ADD_TYPE_ID(emporium, (std::vector<emporium::protocols::hold_view>))
CAF_ADD_TYPE_ID(emporium, (std::vector<emporium::protocols::allocation>))
CAF_ADD_TYPE_ID(emporium, (std::vector<emporium::protocols::domain_event>))
CAF_ADD_TYPE_ID(emporium, (std::vector<emporium::protocols::pair_snapshot>))

CAF_ADD_ATOM(emporium, emporium::protocols, pair_atom, "pair")
CAF_ADD_ATOM(emporium, emporium::protocols, route_atom, "route")
CAF_ADD_ATOM(emporium, emporium::protocols, expire_atom, "expire")
CAF_ADD_ATOM(emporium, emporium::protocols, passivate_atom, "passivate")
CAF_ADD_ATOM(emporium, emporium::protocols, sweep_atom, "sweep")
CAF_ADD_ATOM(emporium, emporium::protocols, ok_atom, "ok")
CAF_ADD_ATOM(emporium, emporium::protocols, ping_atom, "ping")

CAF_END_TYPE_ID_BLOCK(emporium)
