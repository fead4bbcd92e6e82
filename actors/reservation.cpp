#include "actors/reservation.hpp"

#include "actors/entity.hpp"
#include "cluster/seam.hpp"
#include "protocols/errc.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <functional>

namespace emporium::actors {

using namespace protocols;

namespace {

struct reservation_state {
  static inline const char* name = "reservation";
  std::string id;
  store_actor store;
  entity_resolver resolve;
  caf::actor home;
  bool leaving = false;
  size_t under_way = 0;
};

using self_ptr = reservation_actor::stateful_pointer<reservation_state>;
using promise = caf::typed_response_promise<reservation>;

bool live(const reservation_rows& rows) {
  for (auto& h : rows.holds)
    if (h.status == "held" || h.status == "committed")
      return true;
  return false;
}

reservation from_rows(const std::string& id, const reservation_rows& rows) {
  reservation r;
  r.reservation_id = id;
  r.sku = rows.sku;
  r.owner = rows.holds.front().owner;
  for (auto& h : rows.holds) {
    r.allocations.push_back({h.warehouse, h.quantity});
    r.expires_at_ms = h.expires_at_ms;
    r.status = h.status;
  }
  return r;
}

using finish = std::function<void(caf::expected<reservation>)>;

/// Locates the rows, checks the caller, then `then(rows, done)` for a known
/// reservation the caller may see. The request counts as under way (no
/// passivation) until `done` answers it.
template <class Then>
promise locate(self_ptr self, const std::string& user, bool ops, Then then) {
  auto rp = self->make_response_promise<reservation>();
  auto& st = self->state;
  ++st.under_way;
  finish done = [self, rp](caf::expected<reservation> r) mutable {
    --self->state.under_way;
    if (r)
      rp.deliver(std::move(*r));
    else
      rp.deliver(std::move(r.error()));
  };
  self->request(st.store, lookup_timeout, locate_reservation{st.id})
    .then(
      [self, done, user, ops, then](reservation_rows& rows) mutable {
        if (rows.sku.empty()) {
          leave_when_unused(self, self->state.home, self->state.leaving);
          return done(caf::make_error(errc::not_found, std::string{"unknown reservation"}));
        }
        if (!ops && rows.holds.front().owner != user)
          return done(caf::make_error(errc::forbidden,
                                      std::string{"reservation belongs to another customer"}));
        then(std::move(rows), std::move(done));
      },
      [done](caf::error& err) mutable { done(std::move(err)); });
  return rp;
}

reservation_actor::behavior_type reservation_behavior(self_ptr self, std::string id, store_actor store,
                                   entity_resolver resolve, caf::actor home) {
  auto& st = self->state;
  st.id = std::move(id);
  st.store = std::move(store);
  st.resolve = std::move(resolve);
  st.home = std::move(home);
  return {
    [self](find_reservation& q) {
      return locate(self, q.user_id, q.ops, [self](reservation_rows rows, finish done) {
        auto& st = self->state;
        if (!live(rows)) // released or expired: the rows are final
          return done(from_rows(st.id, rows));
        cluster::ask(self, st.resolve, sku_key(rows.sku), get_reservation{st.id}, lookup_timeout, done);
      });
    },
    [self](drop_reservation& q) {
      return locate(self, q.user_id, q.ops, [self, q](reservation_rows rows, finish done) {
        auto& st = self->state;
        if (!live(rows))
          return done(caf::make_error(errc::not_found, std::string{"reservation is no longer held"}));
        // A release is a write: its answer is definite (no deadline here).
        cluster::ask(self, st.resolve, sku_key(rows.sku),
                     release_reservation{st.id, q.user_id, q.correlation_id}, caf::infinite, done);
      });
    },
    [self](passivate_atom) -> caf::result<bool> {
      if (self->state.under_way > 0)
        return false;
      return agree_to_passivate(self);
    },
    [self](handoff_atom) -> caf::result<bool> {
      if (self->state.under_way > 0)
        return false;
      return agree_to_passivate(self);
    },
  };
}

} // namespace

caf::actor spawn_reservation(caf::actor_system& sys, std::string reservation_id, store_actor store,
                             entity_resolver resolve, caf::actor home) {
  return caf::actor_cast<caf::actor>(sys.spawn(reservation_behavior, std::move(reservation_id),
                                               std::move(store), std::move(resolve), std::move(home)));
}

} // namespace emporium::actors
