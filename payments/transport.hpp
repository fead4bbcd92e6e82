#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace emporium::payments {

/// A provider's HTTP answer. status 0: no answer at all (refused, reset,
/// timed out); `error` then says why.
struct http_reply {
  int status = 0;
  std::string body;
  std::string error;
};

/// How the adapter reaches providers: `POST {base_url}/{op}` with a JSON body
/// and an Idempotency-Key header. `done` may run on any thread.
class transport {
public:
  virtual ~transport() = default;
  virtual void post(const std::string& base_url, const std::string& op,
                    const std::string& idempotency_key, std::string body,
                    std::function<void(http_reply)> done)
    = 0;
};

/// The real transport: Boost.Beast on its own I/O thread (never on the actor
/// scheduler), one connection per call, `timeout` for the whole exchange.
std::shared_ptr<transport> make_http_transport(std::chrono::milliseconds timeout);

} // namespace emporium::payments
