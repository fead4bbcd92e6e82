#include "protocols/envelope.hpp"

#include <doctest/doctest.h>

using namespace emporium::protocols;

TEST_CASE("the envelope has the contract's fields in order, strings escaped, data as stored") {
  domain_event e{"7f1c0e5a-0000-4000-8000-000000000001", "stock_reserved", "S\"1@w1", "stock", 3,
                 1795219200123, R"({"quantity": 2})", "req_1", "", "al\\ice\n", "node-1"};
  CHECK(envelope_json(e)
        == R"({"eventId":"7f1c0e5a-0000-4000-8000-000000000001","eventType":"stock_reserved",)"
           R"("aggregateId":"S\"1@w1","aggregateType":"stock","eventVersion":3,)"
           R"("eventTime":"2026-11-21T00:00:00.123Z","data":{"quantity": 2},)"
           R"("metadata":{"correlationId":"req_1","causationId":"","userId":"al\\ice\n",)"
           R"("node":"node-1"}})");
}

TEST_CASE("topics by aggregate type") {
  CHECK(topic_for("stock") == "inventory");
  CHECK(topic_for("product") == "inventory");
  CHECK(topic_for("cart") == "carts");
  CHECK(topic_for("order") == "orders");
  CHECK(topic_for("view") == "analytics");
}
