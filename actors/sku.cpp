#include "actors/sku.hpp"

#include "actors/log.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>

namespace emporium::actors {

using namespace protocols;

namespace {

constexpr auto ask_timeout = std::chrono::seconds{10};

struct sku_state {
  static inline const char* name = "sku";
  std::string sku;
  std::map<std::string, stock_actor> pairs; ///< by warehouse
  std::set<std::string> reserving;           ///< idempotent reservations under way
  store_actor store;
  stock_config cfg;
};

using self_ptr = caf::stateful_actor<sku_state>*;

/// Asks every target the same question; `done` gets the answers in order.
template <class T, class Msg, class Done>
void ask_all(self_ptr self, const std::vector<stock_actor>& targets, const Msg& msg, Done done) {
  struct gather {
    std::vector<caf::expected<T>> answers;
    size_t left;
    Done done;
  };
  if (targets.empty()) {
    done(std::vector<caf::expected<T>>{});
    return;
  }
  auto g = std::make_shared<gather>(
    gather{std::vector<caf::expected<T>>(targets.size(), caf::expected<T>{caf::error{}}),
           targets.size(), std::move(done)});
  for (size_t i = 0; i < targets.size(); ++i) {
    self->request(targets[i], ask_timeout, msg)
      .then(
        [g, i](T& x) {
          g->answers[i] = std::move(x);
          if (--g->left == 0)
            g->done(std::move(g->answers));
        },
        [g, i](caf::error& e) {
          g->answers[i] = std::move(e);
          if (--g->left == 0)
            g->done(std::move(g->answers));
        });
  }
}

std::vector<stock_actor> all_pairs(self_ptr self) {
  std::vector<stock_actor> out;
  for (auto& [wh, p] : self->state.pairs)
    out.push_back(p);
  return out;
}

stock_actor pair_for(self_ptr self, const std::string& warehouse) {
  auto& st = self->state;
  if (auto i = st.pairs.find(warehouse); i != st.pairs.end())
    return i->second;
  pair_snapshot fresh;
  fresh.level.sku = st.sku;
  fresh.level.warehouse = warehouse;
  auto p = spawn_linked_stock(self, std::move(fresh), st.store, st.cfg);
  st.pairs.emplace(warehouse, p);
  return p;
}

reservation to_reservation(const std::string& sku, const std::vector<hold_view>& holds) {
  reservation r;
  r.sku = sku;
  for (auto& h : holds) {
    r.reservation_id = h.reservation_id;
    r.allocations.push_back({h.warehouse, h.quantity});
    r.expires_at_ms = h.expires_at_ms;
    r.status = h.status;
    r.owner = h.owner;
  }
  return r;
}

void reserve_across(self_ptr self, reserve_any cmd, caf::response_promise rp) {
  std::vector<stock_actor> targets;
  if (cmd.warehouse.empty()) {
    targets = all_pairs(self);
  } else if (auto i = self->state.pairs.find(cmd.warehouse); i != self->state.pairs.end()) {
    targets.push_back(i->second);
  }
  ask_all<stock_level>(self, targets, get_stock_level{true}, // plan against pending writes too
                       [self, cmd, rp, targets](std::vector<caf::expected<stock_level>> levels) mutable {
    // Plan: largest availability first, so a reservation splits as little as possible.
    std::vector<std::pair<int64_t, size_t>> order;
    int64_t total = 0;
    for (size_t i = 0; i < levels.size(); ++i)
      if (levels[i] && levels[i]->available > 0) {
        order.emplace_back(levels[i]->available, i);
        total += levels[i]->available;
      }
    if (total < cmd.quantity)
      return rp.deliver(caf::make_error(errc::insufficient_stock, total));
    std::sort(order.begin(), order.end(), std::greater<>{});
    std::vector<stock_actor> chosen;
    std::vector<int64_t> amounts;
    int64_t left = cmd.quantity;
    for (auto& [avail, i] : order) {
      if (left == 0)
        break;
      auto take = std::min(avail, left);
      chosen.push_back(targets[i]);
      amounts.push_back(take);
      left -= take;
    }
    struct gather {
      std::vector<caf::expected<stock_result>> parts;
      size_t left;
    };
    auto g = std::make_shared<gather>(
      gather{std::vector<caf::expected<stock_result>>(chosen.size(), caf::error{}),
             chosen.size()});
    for (size_t i = 0; i < chosen.size(); ++i) {
      auto part = reserve_stock{cmd.reservation_id, amounts[i], cmd.expires_at_ms, cmd.user_id,
                                cmd.correlation_id};
      auto finish = [self, g, chosen, targets, cmd, rp]() mutable {
        if (--g->left > 0)
          return;
        std::vector<hold_view> held;
        bool ok = true;
        for (auto& p : g->parts) {
          if (p)
            held.push_back(p->hold);
          else
            ok = false;
        }
        if (ok)
          return rp.deliver(to_reservation(self->state.sku, held));
        // All or nothing: give back the parts we got.
        for (size_t j = 0; j < chosen.size(); ++j)
          if (g->parts[j])
            self->request(chosen[j], ask_timeout, release_stock{cmd.reservation_id, cmd.user_id, cmd.correlation_id})
              .then([](stock_result&) {}, [](caf::error&) {});
        auto first_error = std::find_if(g->parts.begin(), g->parts.end(),
                                        [](auto& p) { return !p; });
        auto code = to_errc(first_error->error());
        if (code == errc::insufficient_stock) {
          ask_all<stock_level>(self, targets, get_stock_level{},
                               [rp](std::vector<caf::expected<stock_level>> now) mutable {
            int64_t sum = 0;
            for (auto& l : now)
              if (l)
                sum += l->available;
            rp.deliver(caf::make_error(errc::insufficient_stock, sum));
          });
          return;
        }
        rp.deliver(first_error->error());
      };
      self->request(chosen[i], ask_timeout, std::move(part))
        .then(
          [g, i, finish](stock_result& r) mutable {
            g->parts[i] = std::move(r);
            finish();
          },
          [g, i, finish](caf::error& e) mutable {
            g->parts[i] = std::move(e);
            finish();
          });
    }
  });
}

/// With an Idempotency-Key: answer a live reservation with this id as is
/// (409 if the request differs), refuse a duplicate that is still under way,
/// otherwise reserve.
void reserve_once(self_ptr self, reserve_any cmd, caf::response_promise rp) {
  if (!self->state.reserving.insert(cmd.reservation_id).second)
    return rp.deliver(caf::make_error(
      errc::conflict, std::string{"a request with this Idempotency-Key is in progress"}));
  auto done = [self, id = cmd.reservation_id, rp](auto result) mutable {
    self->state.reserving.erase(id);
    rp.deliver(std::move(result));
  };
  ask_all<hold_view>(self, all_pairs(self), get_hold{cmd.reservation_id},
                     [self, cmd, done](std::vector<caf::expected<hold_view>> found) mutable {
    std::vector<hold_view> holds;
    for (auto& h : found)
      if (h)
        holds.push_back(std::move(*h));
    if (holds.empty()) {
      auto relay = [done](caf::expected<reservation> r) mutable {
        if (r)
          done(std::move(*r));
        else
          done(std::move(r.error()));
      };
      // Reserve, then hand the outcome to `done`, through a request to ourselves
      // so the all-or-nothing logic stays in one place.
      self->request(caf::actor_cast<caf::actor>(self), ask_timeout,
                    reserve_any{cmd.reservation_id, cmd.quantity,
                                                   cmd.expires_at_ms, cmd.user_id,
                                                   cmd.correlation_id, cmd.warehouse, false})
        .then([relay](reservation& r) mutable { relay(std::move(r)); },
              [relay](caf::error& e) mutable { relay(std::move(e)); });
      return;
    }
    auto existing = to_reservation(self->state.sku, holds);
    int64_t qty = 0;
    for (auto& a : existing.allocations)
      qty += a.quantity;
    bool same = qty == cmd.quantity && existing.owner == cmd.user_id
                && (cmd.warehouse.empty()
                    || (existing.allocations.size() == 1
                        && existing.allocations[0].warehouse == cmd.warehouse));
    if (!same)
      return done(caf::make_error(
        errc::conflict, std::string{"Idempotency-Key reused with a different request"}));
    done(std::move(existing));
  });
}

caf::behavior sku_behavior(self_ptr self, std::string sku, store_actor store, stock_config cfg) {
  auto& st = self->state;
  st.sku = sku;
  st.store = store;
  st.cfg = std::move(cfg);
  metrics::actors("sku").Increment();
  self->attach_functor([] { metrics::actors("sku").Decrement(); });
  // Recover before anything else is processed: await suspends the mailbox.
  self->request(store, ask_timeout, load_sku{sku})
    .await(
      [self](sku_snapshot& snap) {
        for (auto& p : snap.pairs) {
          auto wh = p.level.warehouse;
          self->state.pairs.emplace(
            wh, spawn_linked_stock(self, std::move(p), self->state.store, self->state.cfg));
        }
      },
      [self](caf::error& err) {
        log()->warn("event=sku_recovery_failed sku={} error={}", self->state.sku,
                    to_string(to_errc(err)));
        self->quit(err);
      });
  return {
    [self](pair_atom, const std::string& warehouse, caf::message& cmd) {
      auto& st = self->state;
      if (st.pairs.count(warehouse) == 0 && !cmd.match_element<push_stock_level>(0)
          && !cmd.match_element<adjust_stock>(0)) {
        auto rp = self->make_response_promise();
        if (cmd.match_element<reserve_stock>(0))
          rp.deliver(caf::make_error(errc::insufficient_stock, int64_t{0}));
        else
          rp.deliver(caf::make_error(errc::not_found, std::string{"unknown sku or warehouse"}));
        return;
      }
      self->delegate(caf::actor_cast<caf::actor>(pair_for(self, warehouse)), std::move(cmd));
    },
    [self](get_sku_stock) {
      auto rp = self->make_response_promise();
      if (self->state.pairs.empty()) {
        rp.deliver(caf::make_error(errc::not_found, std::string{"unknown sku"}));
        return rp;
      }
      ask_all<stock_level>(self, all_pairs(self), get_stock_level{},
                           [self, rp](std::vector<caf::expected<stock_level>> levels) mutable {
        sku_stock out;
        out.sku = self->state.sku;
        for (auto& l : levels) {
          if (!l)
            return rp.deliver(l.error());
          out.available += l->available;
          out.warehouses.push_back(std::move(*l));
        }
        rp.deliver(std::move(out));
      });
      return rp;
    },
    [self](reserve_any& cmd) {
      auto rp = self->make_response_promise();
      if (cmd.idempotent)
        reserve_once(self, std::move(cmd), rp);
      else
        reserve_across(self, std::move(cmd), rp);
      return rp;
    },
    [self](get_reservation& q) {
      auto rp = self->make_response_promise();
      ask_all<hold_view>(self, all_pairs(self), get_hold{q.reservation_id},
                         [self, rp](std::vector<caf::expected<hold_view>> found) mutable {
        std::vector<hold_view> holds;
        for (auto& h : found)
          if (h)
            holds.push_back(std::move(*h));
        if (holds.empty())
          return rp.deliver(caf::make_error(errc::not_found, std::string{"unknown reservation"}));
        rp.deliver(to_reservation(self->state.sku, holds));
      });
      return rp;
    },
    [self](release_reservation& cmd) {
      auto rp = self->make_response_promise();
      auto targets = all_pairs(self);
      ask_all<hold_view>(self, targets, get_hold{cmd.reservation_id},
                         [self, rp, cmd, targets](std::vector<caf::expected<hold_view>> found) mutable {
        std::vector<stock_actor> holders;
        for (size_t i = 0; i < found.size(); ++i) {
          if (!found[i])
            continue;
          if (found[i]->status == "committed")
            return rp.deliver(caf::make_error(errc::invalid_state,
                                              std::string{"reservation is committed"}));
          holders.push_back(targets[i]);
        }
        if (holders.empty())
          return rp.deliver(caf::make_error(errc::not_found, std::string{"unknown reservation"}));
        ask_all<stock_result>(self, holders,
                              release_stock{cmd.reservation_id, cmd.user_id, cmd.correlation_id},
                              [self, rp](std::vector<caf::expected<stock_result>> done) mutable {
          std::vector<hold_view> holds;
          for (auto& r : done) {
            if (!r)
              return rp.deliver(r.error());
            holds.push_back(r->hold);
          }
          rp.deliver(to_reservation(self->state.sku, holds));
        });
      });
      return rp;
    },
    [self](passivate_atom) {
      auto rp = self->make_response_promise();
      ask_all<bool>(self, all_pairs(self), passivate_atom_v,
                    [self, rp](std::vector<caf::expected<bool>> idle) mutable {
        for (auto& x : idle)
          if (!x || !*x)
            return rp.deliver(false);
        rp.deliver(true);
        for (auto& [wh, p] : self->state.pairs)
          self->send_exit(p, caf::exit_reason::user_shutdown);
        self->quit();
      });
      return rp;
    },
  };
}

} // namespace

caf::actor spawn_sku(caf::actor_system& sys, std::string sku, store_actor store,
                     stock_config cfg) {
  return sys.spawn(sku_behavior, std::move(sku), std::move(store), std::move(cfg));
}

} // namespace emporium::actors
