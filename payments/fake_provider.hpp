#pragma once

#include <cstdint>
#include <string>

namespace emporium::payments {

struct fake_provider_config {
  std::string address = "127.0.0.1";
  uint16_t port = 0; ///< 0: any free port
  int64_t latency_ms = 0;
  double decline_rate = 0; ///< share of authorizations declined at random
  double failure_rate = 0; ///< share of calls answered 503 (nothing recorded)
  std::string name = "fake";
};

/// A payment provider for development and tests, speaking the contract's
/// provider protocol. Authorizes any token except "tok_decline"; the same
/// Idempotency-Key always gets the first answer and changes nothing again.
/// Control while it runs: `POST /admin/config` with any of latency_ms,
/// decline_rate, failure_rate; `GET /admin/ledger` lists every authorization
/// (id, order_id, amount, status, calls) so tests can check for double charges.
/// Serves until SIGINT/SIGTERM, printing "fake provider NAME on http://ADDR:PORT".
int run_fake_provider(const fake_provider_config& cfg);

} // namespace emporium::payments
