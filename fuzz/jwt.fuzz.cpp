// JWT parsing and verification, and admission of an Authorization header, on
// arbitrary bytes. Oracle: nothing crashes, and a token that verifies was
// signed with the secret (the fuzzer cannot forge one: a verified token must
// re-verify after a round trip of its claims through sign_jwt).
#include "gateway/auth.hpp"
#include "gateway/jwt.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace emporium::gateway;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  constexpr std::string_view secret = "fuzz-secret";
  constexpr int64_t now = 1'800'000'000;
  if (auto p = verify_jwt(text, secret, now)) {
    auto again = verify_jwt(sign_jwt(*p, secret, now, p->exp - now), secret, now);
    if (!again || again->sub != p->sub || again->role != p->role
        || again->warehouses != p->warehouses)
      std::abort();
  }
  std::string header = "Bearer ";
  header += text;
  for (auto rule : {access::anyone, access::optional_token, access::signed_in,
                    access::customer_or_ops, access::warehouse_or_ops, access::ops}) {
    auto r = admit(rule, header, "w1", secret, now);
    (void) r;
  }
  (void) bearer_principal(text, secret, now);
  (void) query_bearer(text);
  return 0;
}
