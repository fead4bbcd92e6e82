#include "actors/sku.hpp"

#include "actors/log.hpp"
#include "cluster/seam.hpp"
#include "protocols/ids.hpp"
#include "protocols/errc.hpp"
#include "protocols/metrics.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>

namespace emporium::actors {

using namespace protocols;

namespace {

constexpr auto ask_timeout = std::chrono::seconds{10}; ///< reads of the store

/// Pause before a failed release of a reservation part is tried again.
constexpr auto release_retry = std::chrono::seconds{1};

struct sku_state {
  static inline const char* name = "sku";
  explicit sku_state(caf::local_actor* self) : clock(self) {
  }
  actor_wall_clock clock;
  std::string sku;
  std::map<std::string, stock_actor> pairs; ///< by warehouse
  std::set<std::string> reserving;           ///< idempotent reservations under way
  std::map<uint64_t, std::function<void()>> retries; ///< releases to try again, by timer id
  uint64_t next_retry = 0;
  size_t under_way = 0; ///< multi-step commands not answered yet (no passivation meanwhile)
  store_actor store;
  stock_config cfg;
};

using self_ptr = caf::stateful_actor<sku_state>*;

/// Asks targets[i] msgs[i] (cluster::gather); `done` gets the answers in
/// order. No timeout: the pairs are this actor's linked children and always
/// answer, a write with its definite outcome (the store bounds statements),
/// so a timeout here would only turn a write that commits later into an error.
template <class T, class Msg, class Done>
void ask_each(self_ptr self, const std::vector<stock_actor>& targets, std::vector<Msg> msgs,
              Done done) {
  auto shared = std::make_shared<std::vector<Msg>>(std::move(msgs));
  cluster::gather<T>(
    targets.size(),
    [self, &targets, shared](size_t i) { return self->request(targets[i], caf::infinite, std::move((*shared)[i])); },
    std::move(done));
}

/// Asks every target the same question.
template <class T, class Msg, class Done>
void ask_all(self_ptr self, const std::vector<stock_actor>& targets, const Msg& msg, Done done) {
  ask_each<T>(self, targets, std::vector<Msg>(targets.size(), msg), std::move(done));
}

std::vector<stock_actor> all_pairs(self_ptr self) {
  std::vector<stock_actor> out;
  for (auto& [wh, p] : self->state.pairs)
    out.push_back(p);
  return out;
}

/// Shows the SKU's pairs to the stock view (the SKU-wide read is answered
/// there once every one of them has published its level).
void show_pairs(self_ptr self) {
  auto& st = self->state;
  if (!st.cfg.view)
    return;
  std::vector<std::string> warehouses;
  for (auto& [wh, p] : st.pairs)
    warehouses.push_back(wh);
  st.cfg.view->publish_sku(st.sku, warehouses, self->id(), st.cfg.under.epoch);
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
  show_pairs(self);
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

using reserve_done = std::function<void(caf::expected<reservation>)>;

/// Gives back the parts of a reservation that failed elsewhere, then calls
/// `done`. A release that fails (PostgreSQL down) is tried again every
/// `release_retry` until it lands or the hold's own expiry has released it:
/// the answer waits for that, so a refused reservation holds nothing.
void release_parts(self_ptr self, std::vector<stock_actor> holders, reserve_any cmd,
                   std::function<void()> done) {
  ask_all<stock_result>(self, holders, release_stock{cmd.reservation_id, cmd.user_id, cmd.correlation_id},
                        [self, holders, cmd, done](std::vector<caf::expected<stock_result>> rs) mutable {
    std::vector<stock_actor> left;
    for (size_t i = 0; i < rs.size(); ++i)
      if (!rs[i] && to_errc(rs[i].error()) != errc::not_found)
        left.push_back(holders[i]);
    if (left.empty())
      return done();
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch()).count();
    log()->warn("event=reservation_part_release_failed sku={} reservation_id={} parts={}",
                self->state.sku, cmd.reservation_id, left.size());
    if (now > cmd.expires_at_ms)
      return done(); // the pairs' expiry timers release what is left
    self->state.retries.emplace(++self->state.next_retry,
                                [self, left = std::move(left), cmd, done]() mutable {
                                  release_parts(self, std::move(left), std::move(cmd), std::move(done));
                                });
    self->delayed_send(self, release_retry, resume_atom_v, self->state.next_retry);
  });
}

/// All or nothing across the SKU's pairs (or only `cmd.warehouse`): plans
/// against each pair's working level, largest availability first (fewest
/// splits), reserves the parts in parallel and, if any part is refused,
/// releases the others before answering.
void reserve_across(self_ptr self, reserve_any cmd, reserve_done done) {
  std::vector<stock_actor> targets;
  if (cmd.warehouse.empty()) {
    targets = all_pairs(self);
  } else if (auto i = self->state.pairs.find(cmd.warehouse); i != self->state.pairs.end()) {
    targets.push_back(i->second);
  }
  ask_all<stock_level>(self, targets, get_stock_level{true}, // plan against pending writes too
                       [self, cmd, done, targets](std::vector<caf::expected<stock_level>> levels) mutable {
    std::vector<std::pair<int64_t, size_t>> order;
    int64_t total = 0;
    for (size_t i = 0; i < levels.size(); ++i)
      if (levels[i] && levels[i]->available > 0) {
        order.emplace_back(levels[i]->available, i);
        total += levels[i]->available;
      }
    if (total < cmd.quantity)
      return done(caf::make_error(errc::insufficient_stock, total));
    std::sort(order.begin(), order.end(), std::greater<>{});
    std::vector<stock_actor> chosen;
    std::vector<reserve_stock> parts;
    int64_t left = cmd.quantity;
    for (auto& [avail, i] : order) {
      if (left == 0)
        break;
      auto take = std::min(avail, left);
      chosen.push_back(targets[i]);
      parts.push_back(reserve_stock{cmd.reservation_id, take, cmd.expires_at_ms, cmd.user_id,
                                    cmd.correlation_id});
      left -= take;
    }
    ask_each<stock_result>(self, chosen, std::move(parts),
                           [self, chosen, targets, cmd, done](std::vector<caf::expected<stock_result>> rs) mutable {
      std::vector<hold_view> held;
      std::vector<stock_actor> holders;
      const caf::error* refused = nullptr;
      for (size_t i = 0; i < rs.size(); ++i) {
        if (rs[i]) {
          held.push_back(rs[i]->hold);
          holders.push_back(chosen[i]);
        } else if (refused == nullptr) {
          refused = &rs[i].error();
        }
      }
      if (refused == nullptr)
        return done(to_reservation(self->state.sku, held));
      // A part was refused (a race with other buyers, or its write failed;
      // the pairs always answer with the definite outcome): give back the
      // parts we got, then answer.
      auto err = *refused;
      release_parts(self, std::move(holders), cmd, [self, targets, err, done]() mutable {
        if (to_errc(err) != errc::insufficient_stock)
          return done(err);
        ask_all<stock_level>(self, targets, get_stock_level{},
                             [done](std::vector<caf::expected<stock_level>> now) mutable {
          int64_t sum = 0;
          for (auto& l : now)
            if (l)
              sum += l->available;
          done(caf::make_error(errc::insufficient_stock, sum));
        });
      });
    });
  });
}

/// With an Idempotency-Key: a reservation with this id that exists, live in a
/// pair or final in PostgreSQL (released, expired), is answered as it is now
/// (409 if the request differs) and nothing is held again; a duplicate still
/// under way is refused; otherwise reserve.
void reserve_once(self_ptr self, reserve_any cmd, reserve_done done_) {
  if (!self->state.reserving.insert(cmd.reservation_id).second)
    return done_(caf::make_error(
      errc::conflict, std::string{"a request with this Idempotency-Key is in progress"}));
  auto done = [self, id = cmd.reservation_id, done_](caf::expected<reservation> r) mutable {
    self->state.reserving.erase(id);
    done_(std::move(r));
  };
  auto answer_existing = [self, cmd, done](reservation existing) mutable {
    int64_t qty = 0;
    for (auto& a : existing.allocations)
      qty += a.quantity;
    bool same = existing.sku == self->state.sku && qty == cmd.quantity && existing.owner == cmd.user_id
                && (cmd.warehouse.empty()
                    || (existing.allocations.size() == 1
                        && existing.allocations[0].warehouse == cmd.warehouse));
    if (!same)
      return done(caf::make_error(
        errc::conflict, std::string{"Idempotency-Key reused with a different request"}));
    done(std::move(existing));
  };
  ask_all<hold_view>(self, all_pairs(self), get_hold{cmd.reservation_id},
                     [self, cmd, done, answer_existing](std::vector<caf::expected<hold_view>> found) mutable {
    std::vector<hold_view> holds;
    for (auto& h : found)
      if (h)
        holds.push_back(std::move(*h));
    if (!holds.empty())
      return answer_existing(to_reservation(self->state.sku, holds));
    // A client's key (the saga names its own ids and reserves once per
    // order): released or expired rows stay in PostgreSQL, and a retry must
    // not turn them back into a hold. One indexed read, only on this path.
    if (cmd.idempotency_key.empty())
      return reserve_across(self, std::move(cmd), std::move(done));
    self->request(self->state.store, ask_timeout, locate_reservation{cmd.reservation_id})
      .then(
        [self, cmd, done, answer_existing](reservation_rows& rows) mutable {
          if (!rows.sku.empty()) {
            auto r = to_reservation(rows.sku, rows.holds);
            return answer_existing(std::move(r));
          }
          reserve_across(self, std::move(cmd), std::move(done));
        },
        [done](caf::error& err) mutable { done(std::move(err)); });
  });
}

/// The handler of at_pair<Cmd>: hands the command to the pair of its
/// warehouse (which answers the caller directly). Push and adjust create a
/// pair that does not exist yet; other commands for one answer at once.
template <class Cmd>
auto to_pair(self_ptr self) {
  return [self](at_pair<Cmd>& m) {
    auto& st = self->state;
    constexpr bool creates = std::is_same_v<Cmd, push_stock_level> || std::is_same_v<Cmd, adjust_stock>;
    if (!creates && st.pairs.count(m.warehouse) == 0) {
      auto rp = self->make_response_promise();
      if constexpr (std::is_same_v<Cmd, reserve_stock>)
        rp.deliver(caf::make_error(errc::insufficient_stock, int64_t{0}));
      else
        rp.deliver(caf::make_error(errc::not_found, std::string{"unknown sku or warehouse"}));
      return;
    }
    self->delegate(pair_for(self, m.warehouse), std::move(m.cmd));
  };
}

/// Passivation and handoff: the SKU stops, with its pairs, only if nothing
/// is under way here and every pair agrees to `question`.
template <class Question>
caf::response_promise stop_if_pairs_agree(self_ptr self, Question question) {
  auto rp = self->make_response_promise();
  auto& st = self->state;
  if (st.under_way > 0 || !st.retries.empty()) {
    rp.deliver(false);
    return rp;
  }
  ask_all<bool>(self, all_pairs(self), question,
                [self, rp](std::vector<caf::expected<bool>> idle) mutable {
    if (self->state.under_way > 0 || !self->state.retries.empty())
      return rp.deliver(false);
    for (auto& x : idle)
      if (!x || !*x)
        return rp.deliver(false);
    rp.deliver(true);
    for (auto& [wh, p] : self->state.pairs)
      self->send_exit(p, caf::exit_reason::user_shutdown);
    self->quit();
  });
  return rp;
}

caf::behavior sku_behavior(self_ptr self, std::string sku, store_actor store, stock_config cfg) {
  auto& st = self->state;
  st.sku = sku;
  st.store = store;
  st.cfg = std::move(cfg);
  metrics::actors("sku").Increment();
  self->attach_functor([view = st.cfg.view, sku, id = self->id()](const caf::error& reason) {
    metrics::actors("sku").Decrement();
    // Passivation and handoff end with quit() (normal): the list stays, like
    // the pairs' levels; any other end withdraws it.
    if (view && reason && reason != caf::exit_reason::normal)
      view->withdraw_sku(sku, id);
  });
  // Recover before anything else is processed: await suspends the mailbox.
  self->request(store, ask_timeout, load_sku{sku})
    .await(
      [self](sku_snapshot& snap) {
        for (auto& p : snap.pairs) {
          auto wh = p.level.warehouse;
          self->state.pairs.emplace(
            wh, spawn_linked_stock(self, std::move(p), self->state.store, self->state.cfg));
        }
        show_pairs(self);
      },
      [self](caf::error& err) {
        log()->warn("event=sku_recovery_failed sku={} error={}", self->state.sku,
                    to_string(to_errc(err)));
        self->quit(err);
      });
  return {
    to_pair<push_stock_level>(self),
    to_pair<adjust_stock>(self),
    to_pair<reserve_stock>(self),
    to_pair<release_stock>(self),
    to_pair<commit_stock>(self),
    to_pair<fulfil_stock>(self),
    to_pair<extend_hold>(self),
    to_pair<get_stock_level>(self),
    to_pair<get_hold>(self),
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
      auto& st = self->state;
      if (cmd.reservation_id.empty())
        cmd.reservation_id = cmd.idempotency_key.empty()
                               ? new_id("rsv_")
                               : derived_id("rsv_", cmd.user_id, cmd.idempotency_key);
      if (cmd.expires_at_ms == 0)
        cmd.expires_at_ms = st.clock.now_ms(self) + cmd.ttl_ms;
      ++self->state.under_way;
      auto done = [self, rp](caf::expected<reservation> r) mutable {
        --self->state.under_way;
        if (r)
          rp.deliver(std::move(*r));
        else
          rp.deliver(std::move(r.error()));
      };
      if (cmd.idempotent)
        reserve_once(self, std::move(cmd), std::move(done));
      else
        reserve_across(self, std::move(cmd), std::move(done));
      return rp;
    },
    [](resume_atom) {
      // Woken where its shard was taken: recovery (before this) armed its
      // pairs' expiry timers and released what expired meanwhile.
    },
    [self](resume_atom, uint64_t id) {
      auto& retries = self->state.retries;
      if (auto i = retries.find(id); i != retries.end()) {
        auto retry = std::move(i->second);
        retries.erase(i);
        retry();
      }
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
    [self](passivate_atom) { return stop_if_pairs_agree(self, passivate_atom_v); },
    [self](handoff_atom) { return stop_if_pairs_agree(self, handoff_atom_v); },
  };
}

} // namespace

caf::actor spawn_sku(caf::actor_system& sys, std::string sku, store_actor store,
                     stock_config cfg) {
  return sys.spawn(sku_behavior, std::move(sku), std::move(store), std::move(cfg));
}

} // namespace emporium::actors
