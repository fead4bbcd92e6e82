// Every route's request through the route table (percent-decoding, id
// parameters, the query) into its handler, with the fuzzer's method, target,
// body and caller. The exchange's rule is the oracle: a handler answers
// exactly once (respond or fail) unless it asked an actor, and never 5xx for
// input alone.
#include "gateway/exchange.hpp"
#include "gateway/routes.hpp"
#include "gateway/server.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace emporium;
using namespace emporium::gateway;

namespace {

class fuzz_exchange : public exchange {
public:
  fuzz_exchange(route_match m, std::optional<principal> who, std::string_view target,
                std::string_view body, std::string_view key)
    : target_(target), body_(body), key_(key) {
    match_ = std::move(m);
    caller_ = std::move(who);
    request_id_ = "fuzz";
  }

  std::string_view body() const override { return body_; }
  std::string_view header(std::string_view name) const override {
    return name == "Idempotency-Key" ? key_ : std::string_view{};
  }
  const gateway_config& config() const override {
    static const gateway_config cfg;
    return cfg;
  }
  void respond(unsigned status, json::object) override { answer(status); }
  void respond_text(unsigned status, std::string, const char*) override { answer(status); }
  void fail(const error_reply& r) override { answer(r.status); }
  void upgrade_storefront() override { answer(101); }
  void upgrade_warehouse(std::string) override { answer(101); }
  caf::actor resolve(const protocols::entity_key&) override { return {}; }
  caf::actor health() override { return {}; }
  const cluster::stock_view* stock_view() const override { return nullptr; }
  const cluster::shard_table* shards() const override { return nullptr; }
  caf::actor membership() override { return {}; }
  std::string_view target() const override { return target_; }

  int answers = 0;
  bool asked = false;

protected:
  ticket begin_wait() override {
    asked = true;
    // Not owning: a dropped bridge job answers through complete() at once
    // (gateway::answer_once), while this exchange is alive.
    return {std::shared_ptr<exchange>(std::shared_ptr<void>{}, this), 0};
  }
  void run_in_bridge(std::function<void(caf::event_based_actor*)>) override {}
  void complete(const ticket&, std::function<void(exchange&)>) override {}

private:
  void answer(unsigned status) {
    ++answers;
    if (status >= 500 || answers > 1)
      std::abort(); // input alone made a 5xx, or a second answer
  }
  std::string_view target_, body_, key_;
};

principal caller_of(uint8_t kind) {
  switch (kind % 4) {
    case 0: return {"alice", "customer", {}, 1 << 30};
    case 1: return {"wh-1", "warehouse", {"w1", "w2"}, 1 << 30};
    case 2: return {"ops-1", "ops", {}, 1 << 30};
    default: return {"bob", "customer", {}, 1 << 30};
  }
}

} // namespace

// Input: byte 0 method, byte 1 caller; then the target up to '\n', the
// Idempotency-Key up to the next '\n', and the body.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2)
    return 0;
  static constexpr method methods[] = {method::get, method::put, method::post, method::delete_,
                                       method::other};
  auto m = methods[data[0] % 5];
  auto who = caller_of(data[1]);
  std::string_view rest{reinterpret_cast<const char*>(data + 2), size - 2};
  auto nl = rest.find('\n');
  auto target = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
  nl = rest.find('\n');
  auto key = rest.substr(0, nl);
  auto body = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);

  auto match = match_route(route_table(), m, target);
  if (match.found == nullptr) {
    if (match.error == errc::internal)
      std::abort();
    return 0;
  }
  auto run = match.found->run;
  fuzz_exchange x{std::move(match), std::move(who), target, body, key};
  run(x);
  if (x.answers == 0 && !x.asked)
    std::abort(); // a silent drop
  return 0;
}
