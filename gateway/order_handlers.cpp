#include "gateway/handlers.hpp"

namespace emporium::gateway::handlers {

namespace p = protocols;

namespace {

p::caller caller_of(exchange& x) {
  auto& who = x.who();
  return p::caller{who.sub, who.role, who.warehouses, x.request_id()};
}

p::entity_key order_of(exchange& x) {
  return p::order_key(x.param("order_id"));
}

/// cancel, ship, deliver, return: the order actor checks who and when.
void act(exchange& x, const char* action) {
  if (!x.body_empty_or_object())
    return;
  x.ask_entity_and_answer(order_of(x), p::order_action{action, caller_of(x)}, 200, order_json);
}

} // namespace

void get_order(exchange& x) {
  x.ask_entity_and_answer(order_of(x), p::get_order{caller_of(x)}, 200, order_json);
}

void get_order_events(exchange& x) {
  x.ask_entity(
    order_of(x), p::get_order_events{caller_of(x)},
    [](exchange& x, caf::expected<std::vector<p::domain_event>> r) {
      if (!r)
        return x.fail(r.error());
      json::array list;
      for (auto& e : *r)
        list.push_back(event_json(e));
      x.respond(200, {{"order_id", x.param("order_id")}, {"events", std::move(list)}});
    });
}

void cancel_order(exchange& x) {
  act(x, "cancel");
}
void ship_order(exchange& x) {
  act(x, "ship");
}
void deliver_order(exchange& x) {
  act(x, "deliver");
}
void return_order(exchange& x) {
  act(x, "return");
}

} // namespace emporium::gateway::handlers
