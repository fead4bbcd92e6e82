#include "actors/product.hpp"

#include "actors/entity.hpp"
#include "actors/log.hpp"
#include "actors/stock.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <boost/json.hpp>

namespace emporium::actors {

using namespace protocols;
namespace json = boost::json;

namespace {

struct product_state {
  static inline const char* name = "product";
  explicit product_state(caf::local_actor* self) : clock(self) {
  }
  caf::actor home;      ///< the router hosting this product
  bool leaving = false; ///< asked home to stop it (nothing stored)
  product value;
  store_actor store;
  std::string node;
  fence under;
  actor_wall_clock clock;
};

using self_ptr = product_actor::stateful_pointer<product_state>;

json::object product_json(const product& p) {
  return {{"sku", p.sku},
          {"name", p.name},
          {"price_minor", p.price_minor},
          {"currency", p.currency},
          {"category", p.category}};
}

/// The product in its stored row, or unreadable_state().
caf::expected<product> from_record(const std::string& sku, const entity_record& r) {
  product p;
  p.sku = sku;
  p.version = r.version;
  if (r.version == 0)
    return p;
  auto o = stored_object(r.state_json);
  if (!o)
    return unreadable_state();
  p.name = text(*o, "name");
  p.price_minor = number(*o, "price_minor");
  p.currency = text(*o, "currency");
  p.category = text(*o, "category");
  return p;
}

product_actor::behavior_type product_behavior(self_ptr self, std::string sku, store_actor store,
                               std::string node, fence under, caf::actor home) {
  auto& st = self->state;
  st.home = std::move(home);
  st.value.sku = sku;
  st.store = std::move(store);
  st.node = std::move(node);
  st.under = under;
  metrics::actors("product").Increment();
  self->attach_functor([] { metrics::actors("product").Decrement(); });
  self->request(st.store, lookup_timeout, load_entity{"product", sku})
    .await(
           [self](entity_record& r) {
             auto p = from_record(self->state.value.sku, r);
             if (!p) {
               log()->error("event=product_state_unreadable sku={}", self->state.value.sku);
               return self->quit(p.error());
             }
             self->state.value = std::move(*p);
           },
           [self](caf::error& err) {
             log()->warn("event=product_recovery_failed sku={} error={}", self->state.value.sku,
                         to_string(to_errc(err)));
             self->quit(err);
           });
  return {
    [self](get_product) -> caf::result<product> {
      if (self->state.value.version == 0) {
        leave_when_unused(self, self->state.home, self->state.leaving);
        return caf::make_error(errc::not_found, std::string{"unknown product"});
      }
      return self->state.value;
    },
    [self](put_product& cmd) {
      auto& st = self->state;
      auto rp = self->make_response_promise<product>();
      auto next = cmd.value;
      next.sku = st.value.sku;
      next.version = st.value.version + 1;
      entity_write w;
      w.expected_version = st.value.version;
      w.under = st.under;
      w.after = entity_record{"product", next.sku,      next.version,
                              "",        "active",      json::serialize(product_json(next)),
                              st.clock.now_ms(self)};
      w.events.push_back(entity_event(w.after,
                                      st.value.version == 0 ? "product_created" : "product_updated",
                                      product_json(next), {cmd.user_id, cmd.correlation_id, st.node}));
      self->request(st.store, caf::infinite, std::move(w))
        .await(
          [self, rp, next](ok_atom) mutable {
            self->state.value = next;
            rp.deliver(next);
          },
          [self, rp](caf::error& err) mutable {
            rp.deliver(err);
            if (stops_entity(err))
              self->quit(err); // another writer: recover from PostgreSQL on next use
          });
      return rp;
    },
    [self](passivate_atom) -> caf::result<bool> { return agree_to_passivate(self); },
    [self](handoff_atom) -> caf::result<bool> { return agree_to_passivate(self); },
  };
}

} // namespace

caf::actor spawn_product(caf::actor_system& sys, std::string sku, store_actor store,
                         std::string node, caf::actor home, fence under) {
  return caf::actor_cast<caf::actor>(sys.spawn(product_behavior, std::move(sku), std::move(store),
                                               std::move(node), under, std::move(home)));
}

} // namespace emporium::actors
