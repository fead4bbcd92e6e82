#pragma once

#include "protocols/entity.hpp"
#include "protocols/type_ids.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include <memory>
#include <utility>
#include <vector>

/// The one way to an entity: ask it by key with a typed message and a
/// deadline, get its typed answer or an error (errc; a deadline that passes
/// or an entity that stops mid-request is `unavailable`). Today the key's
/// shard is always local; the cluster will route to its owner here.
namespace emporium::cluster {

/// The envelope an entity's router takes. Only cluster/ spells it.
template <class Msg>
caf::message routed(const protocols::entity_key& key, Msg msg) {
  return caf::make_message(protocols::route_atom_v, key, caf::make_message(std::move(msg)));
}

/// Answers gathered in the order they were asked for.
template <class T>
using answers = std::vector<caf::expected<T>>;

/// Asks n things at once: `ask(i)` sends the i-th request (returning CAF's
/// response handle); `done(answers<T>)` runs once every one answered or
/// failed. With `Awaited` the asking actor handles nothing else meanwhile
/// (CAF's await). The one fan-out/gather of the project.
template <class T, bool Awaited = false, class Ask, class Done>
void gather(size_t n, Ask ask, Done done) {
  struct state {
    answers<T> got;
    size_t left;
    Done done;
    void put(size_t i, caf::expected<T> x) {
      got[i] = std::move(x);
      if (--left == 0)
        done(std::move(got));
    }
  };
  if (n == 0) {
    done(answers<T>{});
    return;
  }
  auto g = std::make_shared<state>(state{answers<T>(n, caf::expected<T>{caf::error{}}), n, std::move(done)});
  for (size_t i = 0; i < n; ++i) {
    auto on_value = [g, i](T& x) { g->put(i, std::move(x)); };
    auto on_error = [g, i](caf::error& e) { g->put(i, std::move(e)); };
    if constexpr (Awaited)
      ask(i).await(on_value, on_error);
    else
      ask(i).then(on_value, on_error);
  }
}

/// Asks the entity of `key` from inside `self`; `done(caf::expected<R>)` with
/// R = response_of_t<Msg>. `deadline`: a std::chrono duration or caf::infinite
/// (a write, whose answer is definite).
template <class Self, class Msg, class Deadline, class Done>
void ask(Self* self, const protocols::entity_resolver& resolve, const protocols::entity_key& key,
         Msg msg, Deadline deadline, Done done) {
  using T = protocols::response_of_t<Msg>;
  auto shared = std::make_shared<Done>(std::move(done));
  self->request(resolve(key), deadline, protocols::route_atom_v, key, caf::make_message(std::move(msg)))
    .then([shared](T& x) { (*shared)(caf::expected<T>{std::move(x)}); },
          [shared](caf::error& e) { (*shared)(caf::expected<T>{std::move(e)}); });
}

/// The same, but `self` processes nothing else until the answer is in
/// (CAF's await): for entities that handle one command to its end.
template <class Self, class Msg, class Deadline, class Done>
void ask_awaited(Self* self, const protocols::entity_resolver& resolve,
                 const protocols::entity_key& key, Msg msg, Deadline deadline, Done done) {
  using T = protocols::response_of_t<Msg>;
  auto shared = std::make_shared<Done>(std::move(done));
  self->request(resolve(key), deadline, protocols::route_atom_v, key, caf::make_message(std::move(msg)))
    .await([shared](T& x) { (*shared)(caf::expected<T>{std::move(x)}); },
           [shared](caf::error& e) { (*shared)(caf::expected<T>{std::move(e)}); });
}

/// Asks each key its message, all at once; `done(answers<R>)` in order.
template <bool Awaited = false, class Self, class Msg, class Deadline, class Done>
void ask_all(Self* self, const protocols::entity_resolver& resolve,
             std::vector<std::pair<protocols::entity_key, Msg>> asks, Deadline deadline,
             Done done) {
  using T = protocols::response_of_t<Msg>;
  auto shared = std::make_shared<std::vector<std::pair<protocols::entity_key, Msg>>>(std::move(asks));
  gather<T, Awaited>(
    shared->size(),
    [self, &resolve, shared, deadline](size_t i) {
      auto& [key, msg] = (*shared)[i];
      return self->request(resolve(key), deadline, protocols::route_atom_v, key,
                           caf::make_message(std::move(msg)));
    },
    std::move(done));
}

/// Sends the entity of `key` a message it answers nothing to (resume_atom).
template <class Self, class Msg>
void tell(Self* self, const protocols::entity_resolver& resolve, const protocols::entity_key& key,
          Msg msg) {
  // An answer to a plain send reaches a sender with no handler for it, whose
  // CAF 0.17 default handler sends back an error, and an unhandled error
  // stops the entity (with whatever requests it was serving unanswered).
  static_assert(!protocols::answered<Msg>::value, "tell only what the entity does not answer");
  self->send(resolve(key), protocols::route_atom_v, key, caf::make_message(std::move(msg)));
}

} // namespace emporium::cluster
