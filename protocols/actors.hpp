#pragma once

#include "protocols/type_ids.hpp"

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>


/// Typed actor interfaces. Entity actors (SKU groups, later carts and orders)
/// are reached only through the router; services (store) by handle.
namespace emporium::protocols {

/// One SKU x warehouse pair. Every mutating command answers once durable.
using stock_actor = caf::typed_actor<
  caf::replies_to<push_stock_level>::with<stock_result>,
  caf::replies_to<adjust_stock>::with<stock_result>,
  caf::replies_to<reserve_stock>::with<stock_result>,
  caf::replies_to<release_stock>::with<stock_result>,
  caf::replies_to<commit_stock>::with<stock_result>,
  caf::replies_to<fulfil_stock>::with<stock_result>,
  caf::replies_to<extend_hold>::with<stock_result>,
  caf::replies_to<get_stock_level>::with<stock_level>,
  caf::replies_to<get_hold>::with<hold_view>,
  caf::replies_to<passivate_atom>::with<bool>, ///< true: idle, may stop
  caf::replies_to<handoff_atom>::with<bool>,   ///< true: no write under way, may move
  caf::reacts_to<expire_atom>>;

/// What each kind of entity answers (response_of in entity.hpp says the
/// same per message; cluster/seam.hpp asks them by key, never by handle).
using sku_actor = caf::typed_actor<
  caf::replies_to<at_pair<push_stock_level>>::with<stock_result>,
  caf::replies_to<at_pair<adjust_stock>>::with<stock_result>,
  caf::replies_to<at_pair<reserve_stock>>::with<stock_result>,
  caf::replies_to<at_pair<release_stock>>::with<stock_result>,
  caf::replies_to<at_pair<commit_stock>>::with<stock_result>,
  caf::replies_to<at_pair<fulfil_stock>>::with<stock_result>,
  caf::replies_to<at_pair<extend_hold>>::with<stock_result>,
  caf::replies_to<at_pair<get_stock_level>>::with<stock_level>,
  caf::replies_to<at_pair<get_hold>>::with<hold_view>,
  caf::replies_to<get_sku_stock>::with<sku_stock>,
  caf::replies_to<reserve_any>::with<reservation>,
  caf::replies_to<get_reservation>::with<reservation>,
  caf::replies_to<release_reservation>::with<reservation>,
  caf::replies_to<passivate_atom>::with<bool>,
  caf::replies_to<handoff_atom>::with<bool>,
  caf::reacts_to<resume_atom>,             ///< loaded: its pairs' expiry timers run
  caf::reacts_to<resume_atom, uint64_t>>; ///< its own timer: retry a failed release

using product_actor = caf::typed_actor<caf::replies_to<get_product>::with<product>,
                                       caf::replies_to<put_product>::with<product>,
                                       caf::replies_to<passivate_atom>::with<bool>,
                                       caf::replies_to<handoff_atom>::with<bool>>;

using cart_actor = caf::typed_actor<caf::replies_to<create_cart>::with<cart_view>,
                                    caf::replies_to<get_cart>::with<cart_view>,
                                    caf::replies_to<set_cart_item>::with<cart_view>,
                                    caf::replies_to<checkout_cart>::with<order_view>,
                                    caf::replies_to<passivate_atom>::with<bool>,
                                    caf::replies_to<handoff_atom>::with<bool>,
                                    caf::reacts_to<expire_atom>>;

using order_actor = caf::typed_actor<caf::replies_to<place_order>::with<order_view>,
                                     caf::replies_to<get_order>::with<order_view>,
                                     caf::replies_to<get_order_events>::with<std::vector<domain_event>>,
                                     caf::replies_to<order_action>::with<order_view>,
                                     caf::reacts_to<resume_atom>,
                                     caf::replies_to<passivate_atom>::with<bool>,
                                       caf::replies_to<handoff_atom>::with<bool>>;

/// A reservation found by its id (it asks the store which SKU holds it).
using reservation_actor = caf::typed_actor<caf::replies_to<find_reservation>::with<reservation>,
                                           caf::replies_to<drop_reservation>::with<reservation>,
                                           caf::replies_to<passivate_atom>::with<bool>,
                                       caf::replies_to<handoff_atom>::with<bool>>;

/// The payment adapter (payments/): one provider call per message.
using payment_actor = caf::typed_actor<caf::replies_to<payment_call>::with<payment_outcome>>;

/// Whether PostgreSQL answers: what readiness asks (the store implements it).
using health_actor = caf::typed_actor<caf::replies_to<ping_atom>::with<ok_atom>>;

/// Membership and leases in PostgreSQL (persistence/membership.cpp): one
/// round of the cluster coordinator per message.
using membership_actor = caf::typed_actor<caf::replies_to<cluster_tick>::with<cluster_state>,
                                          caf::replies_to<request_drain>::with<ok_atom>>;

/// The PostgreSQL store (a pool of detached workers behind one handle).
using store_actor = caf::typed_actor<
  caf::replies_to<stock_batch>::with<ok_atom>,
  caf::replies_to<load_sku>::with<sku_snapshot>,
  caf::replies_to<locate_reservation>::with<reservation_rows>,
  caf::replies_to<entity_write>::with<ok_atom>,
  caf::replies_to<load_entity>::with<entity_record>,
  caf::replies_to<load_events>::with<std::vector<domain_event>>,
  caf::replies_to<find_unsettled>::with<entity_ids>,
  caf::replies_to<ping_atom>::with<ok_atom>>; ///< ok when PostgreSQL answers

} // namespace emporium::protocols
