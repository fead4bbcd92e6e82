#pragma once

#include "protocols/actors.hpp"

#include <caf/fwd.hpp>

#include <string>

namespace emporium::actors {

/// Spawns the entity actor of one product ("product:SKU"): it recovers the
/// product from the store before anything else, then serves it from memory.
/// Answers get_product -> product (not_found when none) and put_product ->
/// product once durable (event product_created / product_updated);
/// passivate_atom -> true. Writes are awaited: one at a time, in order.
/// `home`: the router hosting it (see leave_when_unused), none in unit tests.
caf::actor spawn_product(caf::actor_system& sys, std::string sku, protocols::store_actor store,
                         std::string node, caf::actor home = {},
                         protocols::fence under = {});

} // namespace emporium::actors
