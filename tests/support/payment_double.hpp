#pragma once

#include "protocols/errc.hpp"
#include "protocols/type_ids.hpp"

#include <caf/all.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace emporium::test {

/// What the payment double does and what it was asked.
struct payment_control {
  std::string mode = "ok"; ///< ok, decline, down (unavailable), hold (no answer yet)
  std::vector<protocols::payment_call> calls;
  std::vector<caf::typed_response_promise<protocols::payment_outcome>> held;
};

inline caf::behavior payment_double(caf::event_based_actor* self, std::shared_ptr<payment_control> ctl) {
  return {
    [self, ctl](protocols::payment_call& c) -> caf::result<protocols::payment_outcome> {
      ctl->calls.push_back(c);
      if (ctl->mode == "down")
        return caf::make_error(errc::unavailable, std::string{"both providers down"});
      if (ctl->mode == "hold") {
        auto rp = self->make_response_promise<protocols::payment_outcome>();
        ctl->held.push_back(rp);
        return rp;
      }
      if (c.op == "authorize")
        return ctl->mode == "decline" ? protocols::payment_outcome{"primary", "declined", ""}
                                      : protocols::payment_outcome{"primary", "authorized", "auth_1"};
      static const std::map<std::string, std::string> done{
        {"capture", "captured"}, {"void", "voided"}, {"refund", "refunded"}};
      return protocols::payment_outcome{c.provider, done.at(c.op), c.authorization_id};
    },
    [ctl](protocols::ok_atom) { // the held calls are answered now (authorized)
      for (auto& rp : ctl->held)
        rp.deliver(protocols::payment_outcome{"primary", "authorized", "auth_9"});
      ctl->held.clear();
    },
  };
}

} // namespace emporium::test
