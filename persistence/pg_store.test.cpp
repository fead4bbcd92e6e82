#include "persistence/pg_store.hpp"

#include <doctest/doctest.h>

using emporium::persistence::with_client_timeouts;

TEST_CASE("client timeouts are added to URL and key=value DSNs, keeping the operator's own") {
  auto url = with_client_timeouts("postgresql://u@h:5432/db");
  CHECK(url.rfind("postgresql://u@h:5432/db?connect_timeout=5&", 0) == 0);
  CHECK(url.find("&tcp_user_timeout=15000") != std::string::npos);
  auto with_query = with_client_timeouts("postgresql://u@h/db?sslmode=disable&connect_timeout=9");
  CHECK(with_query.find("connect_timeout=9") != std::string::npos);
  CHECK(with_query.find("connect_timeout=5") == std::string::npos);
  CHECK(with_query.find("&keepalives=1") != std::string::npos);
  auto kv = with_client_timeouts("host=h dbname=db keepalives_idle=30");
  CHECK(kv.find(" keepalives_idle=10") == std::string::npos);
  CHECK(kv.find(" keepalives=1") != std::string::npos);
  CHECK(kv.find(" connect_timeout=5") != std::string::npos);
}
