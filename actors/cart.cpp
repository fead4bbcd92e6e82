#include "actors/cart.hpp"

#include "actors/entity.hpp"
#include "actors/log.hpp"
#include "cluster/seam.hpp"
#include "actors/stock.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <boost/json.hpp>

#include <algorithm>

namespace emporium::actors {

using namespace protocols;
namespace json = boost::json;

namespace {

struct cart_state {
  static inline const char* name = "cart";
  explicit cart_state(caf::local_actor* self) : clock(self) {
  }
  caf::actor home;     ///< the router hosting this cart
  bool leaving = false; ///< asked home to stop it (nothing stored)
  cart_view cart; ///< version 0: no such cart
  store_actor store;
  cart_config cfg;
  actor_wall_clock clock;
};

using self_ptr = cart_actor::stateful_pointer<cart_state>;

int64_t ttl_ms(const cart_config& cfg) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(cfg.ttl).count();
}

json::object state_json(const cart_view& c) {
  json::array items;
  for (auto& l : c.items)
    items.push_back(json::object{{"sku", l.sku},
                                 {"quantity", l.quantity},
                                 {"unit_price_minor", l.unit_price_minor}});
  json::object out{{"items", std::move(items)}, {"currency", c.currency}};
  if (!c.order_id.empty())
    out["order_id"] = c.order_id;
  return out;
}

void recompute(cart_view& c) {
  c.total_minor = 0;
  for (auto& l : c.items)
    c.total_minor += l.quantity * l.unit_price_minor;
  if (c.items.empty())
    c.currency.clear();
}

/// The cart in its stored row, or unreadable_state().
caf::expected<cart_view> from_record(const std::string& id, const entity_record& r,
                                     const cart_config& cfg) {
  cart_view c;
  c.cart_id = id;
  c.version = r.version;
  if (r.version == 0)
    return c;
  auto o = stored_object(r.state_json);
  if (!o)
    return unreadable_state();
  c.owner = r.owner;
  c.status = r.status;
  c.updated_at_ms = r.updated_at_ms;
  c.expires_at_ms = r.updated_at_ms + ttl_ms(cfg);
  c.currency = text(*o, "currency");
  c.order_id = text(*o, "order_id");
  for (auto& v : list(*o, "items")) {
    if (!v.is_object())
      return unreadable_state();
    auto& l = v.get_object();
    c.items.push_back(cart_line{text(l, "sku"), number(l, "quantity"), number(l, "unit_price_minor")});
  }
  recompute(c);
  return c;
}

void deliver(caf::typed_response_promise<cart_view>& rp, caf::expected<cart_view> r) {
  if (r)
    rp.deliver(std::move(*r));
  else
    rp.deliver(std::move(r.error()));
}

void arm_expiry(self_ptr self);

/// Writes `next` (version bumped here) with one event; on success it becomes
/// the cart and `done` gets it, on failure `done` gets the error and nothing
/// changed. Awaited: the cart handles nothing else meanwhile.
template <class Done>
void write(self_ptr self, cart_view next, const char* type, json::object data,
           const event_origin& origin, Done done) {
  auto& st = self->state;
  auto expected = st.cart.version;
  next.version = expected + 1;
  next.updated_at_ms = st.clock.now_ms(self);
  next.expires_at_ms = next.updated_at_ms + ttl_ms(st.cfg);
  entity_write w;
  w.expected_version = expected;
  w.under = st.cfg.under;
  w.after = entity_record{"cart",      next.cart_id, next.version, next.owner, next.status,
                          json::serialize(state_json(next)), next.updated_at_ms};
  data["cart_id"] = next.cart_id;
  w.events.push_back(entity_event(w.after, type, data, origin));
  self->request(st.store, caf::infinite, std::move(w))
    .await(
      [self, next, done](ok_atom) mutable {
        self->state.cart = std::move(next);
        arm_expiry(self);
        done(caf::expected<cart_view>{self->state.cart});
      },
      [self, done](caf::error& err) mutable {
        log()->warn("event=cart_write_failed cart_id={} error={}", self->state.cart.cart_id,
                    to_string(to_errc(err)));
        done(caf::expected<cart_view>{err});
        if (stops_entity(err))
          self->quit(err); // another writer: recover from PostgreSQL on next use
      });
}

/// Expires the cart now if it has been idle for the TTL.
void expire_if_due(self_ptr self) {
  auto& c = self->state.cart;
  if (c.version == 0 || c.status != "open" || self->state.clock.now_ms(self) < c.expires_at_ms)
    return;
  auto next = c;
  next.status = "expired";
  write(self, std::move(next), "cart_expired", {}, {"", "", self->state.cfg.node},
        [](caf::expected<cart_view>) {});
}

void arm_expiry(self_ptr self) {
  auto& c = self->state.cart;
  if (c.version == 0 || c.status != "open")
    return;
  auto delay = std::max<int64_t>(0, c.expires_at_ms - self->state.clock.now_ms(self)) + 1;
  self->delayed_send(self, std::chrono::milliseconds{delay}, expire_atom_v);
}

/// Nothing is stored under this id: the actor has no state worth keeping.
bool absent(self_ptr self) {
  if (self->state.cart.version != 0)
    return false;
  leave_when_unused(self, self->state.home, self->state.leaving);
  return true;
}

/// The cart as `user`/`ops` may see it, or why not.
caf::error refuse_access(const cart_view& c, const std::string& user, bool ops) {
  if (c.version == 0 || c.status == "expired")
    return caf::make_error(errc::not_found, std::string{"unknown cart"});
  if (!ops && user != c.owner)
    return caf::make_error(errc::forbidden, std::string{"not your cart"});
  return {};
}

void deliver(caf::typed_response_promise<order_view>& rp, caf::expected<order_view> r) {
  if (r)
    rp.deliver(std::move(*r));
  else
    rp.deliver(std::move(r.error()));
}

using order_reply = std::function<void(caf::expected<order_view>)>;

/// The order id a checkout of this cart version makes: a retry of an
/// unchanged cart names the same order.
std::string order_id_for(const cart_view& c) {
  auto stem = c.cart_id.rfind("crt_", 0) == 0 ? c.cart_id.substr(4) : c.cart_id;
  return "ord_" + stem + "-" + std::to_string(c.version);
}

/// Checkout after the price check: place the order, then close the cart.
void place(self_ptr self, checkout_cart cmd, order_reply reply) {
  auto& c = self->state.cart;
  place_order po{c.cart_id, c.owner, {}, c.currency, cmd.payment_method, cmd.payment_token,
                 cmd.shipping_json, cmd.who.correlation_id};
  for (auto& l : c.items)
    po.items.push_back(order_line{l.sku, l.quantity, l.unit_price_minor});
  auto order_id = order_id_for(c);
  cluster::ask_awaited(self, self->state.cfg.resolve, order_key(order_id), std::move(po), lookup_timeout,
                       [self, cmd, reply, order_id](caf::expected<order_view> placed) mutable {
        if (!placed)
          return reply(std::move(placed.error()));
        auto& v = *placed;
        auto next = self->state.cart;
        next.status = "checked_out";
        next.order_id = order_id;
        write(self, std::move(next), "cart_checked_out", {{"order_id", order_id}},
              {cmd.who.user_id, cmd.who.correlation_id, self->state.cfg.node},
              [reply, v](caf::expected<cart_view> r) {
                if (r)
                  reply(v);
                else
                  reply(r.error()); // the order exists; a retry closes the cart
              });
      });
}

/// Checkout: prices are re-checked against the products first. A changed
/// price updates the cart and refuses (409) so the buyer sees what they pay.
void checkout(self_ptr self, checkout_cart cmd, order_reply reply) {
  std::vector<std::pair<entity_key, get_product>> asks;
  for (auto& l : self->state.cart.items)
    asks.emplace_back(product_key(l.sku), get_product{});
  cluster::ask_all<true>(self, self->state.cfg.resolve, std::move(asks), lookup_timeout,
                         [self, cmd, reply](cluster::answers<product> found) mutable {
    auto& c = self->state.cart;
    auto next = c;
    bool changed = false;
    for (size_t i = 0; i < next.items.size(); ++i) {
      auto& p = found[i];
      if (!p)
        return reply(p.error());
      if (p->price_minor != next.items[i].unit_price_minor || p->currency != c.currency) {
        next.items[i].unit_price_minor = p->price_minor;
        next.currency = p->currency;
        changed = true;
      }
    }
    if (!changed)
      return place(self, cmd, reply);
    recompute(next);
    json::array lines;
    for (auto& l : next.items)
      lines.push_back(json::object{{"sku", l.sku}, {"unit_price_minor", l.unit_price_minor}});
    write(self, std::move(next), "cart_prices_updated", {{"items", std::move(lines)}},
          {cmd.who.user_id, cmd.who.correlation_id, self->state.cfg.node},
          [reply](caf::expected<cart_view> r) {
            if (!r)
              return reply(r.error());
            reply(caf::make_error(errc::conflict,
                                  std::string{"prices changed since the items were added; the "
                                              "cart now has the current prices"}));
          });
  });
}

cart_actor::behavior_type cart_behavior(self_ptr self, std::string id, store_actor store, cart_config cfg,
                            caf::actor home) {
  auto& st = self->state;
  st.home = std::move(home);
  st.cart.cart_id = id;
  st.store = std::move(store);
  st.cfg = std::move(cfg);
  metrics::actors("cart").Increment();
  self->attach_functor([] { metrics::actors("cart").Decrement(); });
  self->request(st.store, lookup_timeout, load_entity{"cart", id})
    .await(
      [self](entity_record& r) {
        auto c = from_record(self->state.cart.cart_id, r, self->state.cfg);
        if (!c) {
          log()->error("event=cart_state_unreadable cart_id={}", self->state.cart.cart_id);
          return self->quit(c.error());
        }
        self->state.cart = std::move(*c);
        expire_if_due(self); // expired while no actor ran
        arm_expiry(self);
      },
      [self](caf::error& err) {
        log()->warn("event=cart_recovery_failed cart_id={} error={}", self->state.cart.cart_id,
                    to_string(to_errc(err)));
        self->quit(err);
      });
  return {
    [self](create_cart& cmd) -> caf::result<cart_view> {
      auto& c = self->state.cart;
      if (c.version > 0) {
        if (c.owner != cmd.owner)
          return caf::make_error(errc::conflict, std::string{"cart id already used"});
        if (auto err = refuse_access(c, cmd.owner, false))
          return err;
        return c; // a retry of the same creation
      }
      auto rp = self->make_response_promise<cart_view>();
      cart_view next;
      next.cart_id = c.cart_id;
      next.owner = cmd.owner;
      next.status = "open";
      write(self, std::move(next), "cart_created", {{"owner", cmd.owner}},
            {cmd.owner, cmd.correlation_id, self->state.cfg.node},
            [rp](caf::expected<cart_view> r) mutable { deliver(rp, std::move(r)); });
      return rp;
    },
    [self](get_cart& q) -> caf::result<cart_view> {
      if (absent(self))
        return caf::make_error(errc::not_found, std::string{"unknown cart"});
      if (auto err = refuse_access(self->state.cart, q.user_id, q.ops))
        return err;
      return self->state.cart;
    },
    [self](set_cart_item& cmd) -> caf::result<cart_view> {
      auto& st = self->state;
      if (absent(self))
        return caf::make_error(errc::not_found, std::string{"unknown cart"});
      if (auto err = refuse_access(st.cart, cmd.user_id, cmd.ops))
        return err;
      if (st.cart.status != "open")
        return caf::make_error(errc::invalid_state, std::string{"cart is " + st.cart.status});
      if (cmd.quantity < 0 || cmd.quantity > st.cfg.line_limit)
        return caf::make_error(errc::invalid_field, std::string{"quantity"},
                               "quantity must be 0.." + std::to_string(st.cfg.line_limit));
      auto rp = self->make_response_promise<cart_view>();
      auto reply = [rp](caf::expected<cart_view> r) mutable { deliver(rp, std::move(r)); };
      event_origin origin{cmd.user_id, cmd.correlation_id, st.cfg.node};
      auto line = std::find_if(st.cart.items.begin(), st.cart.items.end(),
                               [&](const cart_line& l) { return l.sku == cmd.sku; });
      if (cmd.quantity == 0) {
        if (line == st.cart.items.end()) {
          rp.deliver(st.cart); // nothing to remove: nothing written
          return rp;
        }
        auto next = st.cart;
        next.items.erase(next.items.begin() + (line - st.cart.items.begin()));
        recompute(next);
        write(self, std::move(next), "cart_item_removed", {{"sku", cmd.sku}}, origin, reply);
        return rp;
      }
      cluster::ask_awaited(self, st.cfg.resolve, product_key(cmd.sku), get_product{}, lookup_timeout,
                           [self, cmd, origin, reply](caf::expected<product> found) mutable {
            if (!found)
              return reply(std::move(found.error()));
            auto& p = *found;
            auto& c = self->state.cart;
            if (!c.currency.empty() && p.currency != c.currency
                && !(c.items.size() == 1 && c.items[0].sku == cmd.sku))
              return reply(caf::make_error(errc::conflict,
                                           std::string{"the cart is in " + c.currency
                                                       + ", the product in " + p.currency}));
            auto next = c;
            auto line = std::find_if(next.items.begin(), next.items.end(),
                                     [&](const cart_line& l) { return l.sku == cmd.sku; });
            if (line == next.items.end())
              next.items.push_back(cart_line{cmd.sku, cmd.quantity, p.price_minor});
            else
              *line = cart_line{cmd.sku, cmd.quantity, p.price_minor};
            next.currency = p.currency;
            recompute(next);
            write(self, std::move(next), "cart_item_set",
                  {{"sku", cmd.sku}, {"quantity", cmd.quantity}, {"unit_price_minor", p.price_minor}},
                  origin, reply);
          });
      return rp;
    },
    [self](checkout_cart& cmd) -> caf::result<order_view> {
      auto& st = self->state;
      if (absent(self))
        return caf::make_error(errc::not_found, std::string{"unknown cart"});
      if (auto err = refuse_access(st.cart, cmd.who.user_id, cmd.who.role == "ops"))
        return err;
      // The promise is made only once the request is sure to be answered
      // through it (returning an error after making it would lose the answer).
      auto promise = [self] {
        auto rp = self->make_response_promise<order_view>();
        return order_reply{[rp](caf::expected<order_view> r) mutable { deliver(rp, std::move(r)); }};
      };
      if (st.cart.status == "checked_out") { // idempotent: the order it made, as it is now
        auto reply = promise();
        cluster::ask_awaited(self, st.cfg.resolve, order_key(st.cart.order_id), get_order{cmd.who},
                             lookup_timeout, reply);
        return caf::delegated<order_view>{};
      }
      if (st.cart.status != "open")
        return caf::make_error(errc::invalid_state, std::string{"cart is " + st.cart.status});
      if (st.cart.items.empty())
        return caf::make_error(errc::conflict, std::string{"cart is empty"});
      checkout(self, std::move(cmd), promise());
      return caf::delegated<order_view>{};
    },
    [self](expire_atom) { expire_if_due(self); },
    [self](passivate_atom) -> caf::result<bool> { return agree_to_passivate(self); },
    [self](handoff_atom) -> caf::result<bool> { return agree_to_passivate(self); },
  };
}

} // namespace

caf::actor spawn_cart(caf::actor_system& sys, std::string cart_id, store_actor store,
                      cart_config cfg, caf::actor home) {
  return caf::actor_cast<caf::actor>(
    sys.spawn(cart_behavior, std::move(cart_id), std::move(store), std::move(cfg), std::move(home)));
}

} // namespace emporium::actors
