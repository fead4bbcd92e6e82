#include "actors/resume.hpp"

#include "actors/log.hpp"
#include "cluster/seam.hpp"
#include "protocols/errc.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

namespace emporium::actors {

using namespace protocols;

namespace {

/// Tells resume_atom to every entity of `kind` the store finds unsettled and
/// `mine` accepts.
void wake(caf::event_based_actor* self, const store_actor& store, const entity_resolver& resolve,
          const key_filter& mine, entity_kind kind, const char* type) {
  self->request(store, std::chrono::seconds{30}, find_unsettled{type})
    .then(
      [=](entity_ids& found) {
        size_t n = 0;
        for (auto& id : found.ids)
          if (entity_key key{kind, id}; !mine || mine(key)) {
            cluster::tell(self, resolve, key, resume_atom_v);
            ++n;
          }
        log()->info("event=unsettled_resumed kind={} count={}", type, n);
      },
      [type](caf::error& err) {
        log()->error("event=unsettled_not_resumed kind={} error={}", type, to_string(to_errc(err)));
      });
}

} // namespace

void resume_unsettled(caf::actor_system& sys, store_actor store, entity_resolver resolve,
                      key_filter mine) {
  sys.spawn([store, resolve, mine](caf::event_based_actor* self) {
    wake(self, store, resolve, mine, entity_kind::order, "order");
    wake(self, store, resolve, mine, entity_kind::sku, "sku");
  });
}

} // namespace emporium::actors
