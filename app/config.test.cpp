#include "app/config.hpp"

#include <doctest/doctest.h>

#include <cstdlib>

using namespace emporium::app;

namespace {

/// Parses `args` as the flags of `serve` with a clean EMPORIUM_* environment
/// but for the secret.
std::pair<std::optional<node_config>, std::string> parse(std::vector<std::string> args) {
  for (auto* v : {"EMPORIUM_HTTP", "EMPORIUM_SEEDS", "EMPORIUM_STORE_CONNECTIONS", "EMPORIUM_PG"})
    unsetenv(v);
  setenv("EMPORIUM_JWT_SECRET", "s", 1);
  std::vector<char*> argv{const_cast<char*>("emporium"), const_cast<char*>("serve")};
  for (auto& a : args)
    argv.push_back(a.data());
  return parse_node_config(read_flags(static_cast<int>(argv.size()), argv.data(), 2));
}

} // namespace

TEST_CASE("no flags: the documented defaults") {
  auto [c, why] = parse({});
  REQUIRE(c);
  CHECK(c->http.host == "127.0.0.1");
  CHECK(c->http.port == 8080);
  CHECK(c->kafka == "embedded");
  CHECK(c->store_connections == 4);
  CHECK(c->actor_timeout == std::chrono::milliseconds{10000});
  CHECK(c->io_threads == 0); // auto
}

TEST_CASE("an unknown flag, a stray word or a flag without a value is refused by name") {
  CHECK(parse({"--no-such-flag", "x"}).second == "unknown flag --no-such-flag (see --help)");
  CHECK(parse({"serve-me"}).second.find("unexpected argument 'serve-me'") != std::string::npos);
  CHECK(parse({"--http"}).second == "--http needs a value (see --help)");
}

TEST_CASE("a port outside 1..65535 or an address that is not an IP literal is refused") {
  for (auto bad : {"127.0.0.1:99999", "127.0.0.1:0", "127.0.0.1:", "127.0.0.1:80x", "localhost:8080", "8080"}) {
    CAPTURE(bad);
    auto [c, why] = parse({"--http", bad});
    CHECK_FALSE(c);
    CHECK(why.rfind("--http (EMPORIUM_HTTP): ", 0) == 0);
  }
  setenv("EMPORIUM_HTTP", "127.0.0.1:99999", 1);
  std::vector<char*> argv{const_cast<char*>("emporium"), const_cast<char*>("serve")};
  auto [c, why] = parse_node_config(read_flags(2, argv.data(), 2));
  CHECK_FALSE(c);
  CHECK(why == "--http (EMPORIUM_HTTP): port must be from 1 to 65535, got '99999'");
  unsetenv("EMPORIUM_HTTP");
  CHECK(parse({"--http", "[::1]:9000"}).first->http.host == "::1");
}

TEST_CASE("a flag wins over its variable") {
  setenv("EMPORIUM_STORE_CONNECTIONS", "9", 1);
  std::vector<std::string> args{"--store-connections", "3"};
  std::vector<char*> argv{const_cast<char*>("emporium"), const_cast<char*>("serve")};
  for (auto& a : args)
    argv.push_back(a.data());
  auto [c, why] = parse_node_config(read_flags(static_cast<int>(argv.size()), argv.data(), 2));
  REQUIRE(c);
  CHECK(c->store_connections == 3);
  unsetenv("EMPORIUM_STORE_CONNECTIONS");
}

TEST_CASE("malformed numbers name the flag and the accepted range") {
  CHECK(parse({"--store-connections", "-1"}).second
        == "--store-connections (EMPORIUM_STORE_CONNECTIONS): must be a whole number from 1 to 256, got '-1'");
  CHECK_FALSE(parse({"--actor-timeout-ms", "10s"}).first);
  CHECK_FALSE(parse({"--kafka-properties", "=x"}).first);
  CHECK_FALSE(parse({"--log-format", "xml"}).first);
  CHECK_FALSE(parse({"--pg", "host=x"}).first);
  CHECK(parse({"--default-hold-ttl", "7200"}).second == "--default-hold-ttl must not exceed --max-hold-ttl");
}

TEST_CASE("seeds are a list of endpoints; a malformed one names the flag") {
  auto [c, why] = parse({"--seeds", "127.0.0.1:7070,127.0.0.1:7071"});
  REQUIRE(c);
  CHECK(c->seeds.size() == 2);
  CHECK(c->seeds[1].port == 7071);
  CHECK(parse({"--seeds", "127.0.0.1:7070,nohost"}).second.rfind("--seeds (EMPORIUM_SEEDS)", 0) == 0);
}

TEST_CASE("the cluster port binds a non-loopback address only with mutual TLS") {
  auto [c, why] = parse({"--cluster", "10.0.0.5:7070"});
  CHECK_FALSE(c);
  CHECK(why.find("not a loopback address") != std::string::npos);
  CHECK(parse({"--cluster", "127.0.0.2:7070"}).first);
  CHECK(parse({"--cluster", "[::1]:7070"}).first);
  CHECK(parse({"--cluster", "10.0.0.5:7070", "--cluster-cert", "c.pem", "--cluster-key", "k.pem",
               "--cluster-ca", "ca.pem"}).first);
  CHECK(parse({"--cluster-cert", "c.pem"}).second.find("go together") != std::string::npos);
}

TEST_CASE("without a secret the node does not start") {
  std::vector<char*> argv{const_cast<char*>("emporium"), const_cast<char*>("serve")};
  unsetenv("EMPORIUM_JWT_SECRET");
  auto [c, why] = parse_node_config(read_flags(2, argv.data(), 2));
  CHECK_FALSE(c);
  CHECK(why == "--jwt-secret (EMPORIUM_JWT_SECRET) is required");
}

TEST_CASE("--help lists every setting with its variable") {
  auto help = serve_options_help();
  for (auto* s : {"--http", "EMPORIUM_HTTP", "EMPORIUM_SEEDS", "EMPORIUM_WS_MAX_SUBSCRIPTIONS", "[127.0.0.1:8080]"})
    CHECK(help.find(s) != std::string::npos);
}

TEST_CASE("limits: the contract's defaults, RATE:BURST or 0, trusted proxies as networks") {
  auto [c, why] = parse({});
  REQUIRE(c);
  CHECK(c->rate_limit_public.per_second == 50);
  CHECK(c->rate_limit_public.burst == 100);
  CHECK(c->rate_limit_customer.per_second == 20);
  CHECK(c->rate_limit_customer.burst == 60);
  CHECK(c->max_inflight == 4096);
  CHECK(c->max_connections == 10000);
  CHECK(c->trusted_proxies.empty());
  auto off = parse({"--rate-limit-customer", "0", "--trusted-proxies", "10.0.0.0/8,::1"});
  REQUIRE(off.first);
  CHECK_FALSE(off.first->rate_limit_customer.on());
  CHECK(off.first->trusted_proxies.size() == 2);
  CHECK(parse({"--rate-limit-public", "fast"}).second.find("RATE:BURST") != std::string::npos);
  CHECK(parse({"--trusted-proxies", "10.0.0.0/40"}).second.find("0 to 32") != std::string::npos);
  CHECK_FALSE(parse({"--max-inflight", "0"}).first);
}

TEST_CASE("a database URL is logged without its password") {
  CHECK(redact_dsn("postgresql://app:s3cret@db:5432/emporium") == "postgresql://app:***@db:5432/emporium");
  CHECK(redact_dsn("postgresql://app@db/emporium") == "postgresql://app@db/emporium");
  CHECK(redact_dsn("postgresql://db/e?password=s3cret&sslmode=require")
        == "postgresql://db/e?password=***&sslmode=require");
  CHECK(redact_dsn("host=db password=s3cret user=app") == "host=db password=*** user=app");
}
