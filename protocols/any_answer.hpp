#pragma once

#include <caf/detail/behavior_impl.hpp>
#include <caf/detail/invoke_result_visitor.hpp>
#include <caf/message.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/type_erased_tuple.hpp>

#include <functional>

namespace emporium::protocols {

/// A response handler taking any answer, whatever its type (CAF 0.17's
/// behaviors have no catch-all): the answer of a request passed on is handed
/// to `f` as the message it is, an error included.
class any_answer final : public caf::detail::behavior_impl {
public:
  explicit any_answer(std::function<void(caf::message)> f) : f_(std::move(f)) {
    begin_ = end_ = nullptr;
  }
  caf::match_case::result invoke(caf::detail::invoke_result_visitor& v,
                                 caf::type_erased_tuple& xs) override {
    f_(caf::message::copy(xs));
    v();
    return caf::match_case::match;
  }

private:
  std::function<void(caf::message)> f_;
};

/// Runs `f` with the answer to the request `id` that `self` sent.
inline void on_any_answer(caf::scheduled_actor* self, caf::message_id id,
                          std::function<void(caf::message)> f) {
  caf::behavior handler;
  handler.assign(caf::intrusive_ptr<caf::detail::behavior_impl>{
    caf::make_counted<any_answer>(std::move(f))});
  self->add_multiplexed_response_handler(id, std::move(handler));
}

} // namespace emporium::protocols
