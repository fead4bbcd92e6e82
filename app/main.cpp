// The composition root: the only place that links every folder.
#include "app/config.hpp"
#include "app/node.hpp"
#include "gateway/jwt.hpp"
#include "gateway/routes.hpp"
#include "payments/fake_provider.hpp"
#include "persistence/migrations.hpp"
#include "protocols/errc.hpp"
#include "protocols/logging.hpp"

#include <spdlog/cfg/env.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <csignal>
#include <iostream>
#include <optional>
#include <sstream>

using namespace emporium;

namespace {

constexpr const char* usage = R"(emporium: actor-based real-time commerce backend

Usage:
  emporium serve [options]     start a node
  emporium migrate [--pg URL]  apply database migrations and exit
  emporium token --sub ID --role customer|warehouse|ops [--wh W1,W2] [--ttl SECONDS] [--count N]
                               print a token signed with the configured secret
                               (--count N: N tokens, one per line, for subs ID-0 .. ID-N-1)
  emporium fake-provider [--listen ADDR:PORT] [--name N] [--latency-ms MS]
                         [--decline-rate R] [--failure-rate R]
                               run the development payment provider (docs/orders.md)
  emporium routes              print the route table: method, pattern, access rule
  emporium --help

Options of serve (each also an environment variable; a flag wins):
)";

constexpr const char* usage_tail = R"(
Logging levels: SPDLOG_LEVEL, e.g. SPDLOG_LEVEL=info,gateway=debug.
SIGTERM or SIGINT: stop accepting, finish in-flight requests, flush, exit 0.
)";

/// A non-negative whole number, or nullopt after saying what is wrong.
std::optional<int64_t> whole_number(const std::string& s, const char* flag) {
  try {
    size_t used = 0;
    auto x = std::stoll(s, &used);
    if (used == s.size() && x >= 0)
      return x;
  } catch (const std::exception&) {
  }
  std::cerr << "emporium: " << flag << " must be a non-negative integer, got '" << s << "'\n";
  return std::nullopt;
}

/// %* in a pattern: the message, escaped for a JSON string.
class json_message_flag : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char c : msg.payload) {
      switch (c) {
        case '"': dest.append(std::string_view{"\\\""}); break;
        case '\\': dest.append(std::string_view{"\\\\"}); break;
        case '\n': dest.append(std::string_view{"\\n"}); break;
        default:
          if (static_cast<unsigned char>(c) < 0x20)
            dest.append(std::string_view{" "});
          else
            dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<json_message_flag>();
  }
};

void setup_logging(const std::string& format) {
  auto logger = std::make_shared<spdlog::logger>(
    "emporium", std::make_shared<spdlog::sinks::stdout_sink_mt>());
  spdlog::set_default_logger(logger);
  // Set on the registry, so every folder's logger (initialize_logger) gets it.
  if (format == "text") {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %l [%n] %v");
  } else {
    auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    f->add_flag<json_message_flag>('*').set_pattern(
      R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","msg":"%*"})");
    spdlog::set_formatter(std::move(f));
  }
  spdlog::flush_on(spdlog::level::warn);
  spdlog::cfg::load_env_levels();
}

int token_command(const app::flag_list& f) {
  gateway::principal p;
  if (!f.error.empty()) {
    std::cerr << "emporium token: " << f.error << "\n";
    return 2;
  }
  p.sub = app::setting(f, "--sub", "EMPORIUM_TOKEN_SUB", "");
  p.role = app::setting(f, "--role", "EMPORIUM_TOKEN_ROLE", "");
  auto wh = app::setting(f, "--wh", "EMPORIUM_TOKEN_WH", "");
  auto ttl = whole_number(app::setting(f, "--ttl", "EMPORIUM_TOKEN_TTL", "3600"), "--ttl");
  auto count = whole_number(app::setting(f, "--count", "EMPORIUM_TOKEN_COUNT", "1"), "--count");
  auto secret = app::setting(f, "--jwt-secret", "EMPORIUM_JWT_SECRET", "");
  if (p.sub.empty() || (p.role != "customer" && p.role != "warehouse" && p.role != "ops")) {
    std::cerr << "emporium token: --sub ID and --role customer|warehouse|ops are required\n";
    return 2;
  }
  if (!ttl || !count)
    return 2;
  if (secret.empty()) {
    std::cerr << "emporium token: set EMPORIUM_JWT_SECRET (or --jwt-secret)\n";
    return 2;
  }
  std::stringstream ss{wh};
  for (std::string w; std::getline(ss, w, ',');)
    if (!w.empty())
      p.warehouses.push_back(w);
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  if (*count == 1) {
    std::cout << gateway::sign_jwt(p, secret, now, *ttl) << "\n";
    return 0;
  }
  std::string out, sub = p.sub;
  for (long long i = 0; i < *count; ++i) {
    p.sub = sub + "-" + std::to_string(i);
    out += gateway::sign_jwt(p, secret, now, *ttl) + "\n";
  }
  std::cout << out;
  return 0;
}


int fake_provider_command(const app::flag_list& f) {
  payments::fake_provider_config cfg;
  if (!f.error.empty()) {
    std::cerr << "emporium fake-provider: " << f.error << "\n";
    return 2;
  }
  auto listen = app::setting(f, "--listen", "EMPORIUM_FAKE_PROVIDER", "127.0.0.1:9101");
  app::endpoint at;
  if (auto why = app::parse_endpoint(listen, at); !why.empty()) {
    std::cerr << "emporium fake-provider: --listen " << why << "\n";
    return 2;
  }
  cfg.address = at.host;
  cfg.port = at.port;
  cfg.name = app::setting(f, "--name", "EMPORIUM_FAKE_PROVIDER_NAME", "fake");
  auto latency = whole_number(app::setting(f, "--latency-ms", "EMPORIUM_FAKE_LATENCY_MS", "0"), "--latency-ms");
  if (!latency)
    return 2;
  cfg.latency_ms = *latency;
  try {
    cfg.decline_rate = std::stod(app::setting(f, "--decline-rate", "EMPORIUM_FAKE_DECLINE_RATE", "0"));
    cfg.failure_rate = std::stod(app::setting(f, "--failure-rate", "EMPORIUM_FAKE_FAILURE_RATE", "0"));
  } catch (const std::exception&) {
    std::cerr << "emporium fake-provider: rates are numbers between 0 and 1\n";
    return 2;
  }
  return payments::run_fake_provider(cfg);
}

int migrate_command(const app::flag_list& f) {
  if (!f.error.empty()) {
    std::cerr << "emporium migrate: " << f.error << "\n";
    return 2;
  }
  setup_logging(app::setting(f, "--log-format", "EMPORIUM_LOG_FORMAT", "text"));
  auto applied = persistence::migrate(app::setting(f, "--pg", "EMPORIUM_PG", app::node_config{}.pg));
  if (!applied)
    return 1;
  std::cout << "migrations applied: " << *applied << "\n";
  return 0;
}

int serve_command(const app::flag_list& f) {
  auto [cfg, why] = app::parse_node_config(f);
  if (!cfg) {
    std::cerr << "emporium serve: " << why << "\n";
    return 2;
  }
  setup_logging(cfg->log_format);
  auto log = protocols::named_logger("app");
  // Block the stop signals in every thread; the main thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  auto node = app::node::start(*cfg);
  if (!node)
    return 1;
  // A stop signal drains: the node hands its shards to the others, shows
  // `left`, then exits 0. A drain asked for over HTTP ends the same way. A
  // second signal, or a drain that takes over a minute, stops at once.
  auto wait_signal = [&](std::chrono::milliseconds d) {
    timespec ts{0, static_cast<long>(std::chrono::nanoseconds{d}.count())};
    return sigtimedwait(&stop_signals, nullptr, &ts);
  };
  int sig = -1;
  while (sig <= 0 && !(*node)->has_left())
    sig = wait_signal(std::chrono::milliseconds{100});
  if (sig > 0) {
    log->info("event=node_draining signal={}", sig);
    (*node)->drain();
    auto until = std::chrono::steady_clock::now() + std::chrono::minutes{1};
    while (!(*node)->has_left() && std::chrono::steady_clock::now() < until)
      if (wait_signal(std::chrono::milliseconds{100}) > 0)
        break;
  }
  log->info("event=node_stopping left={}", (*node)->has_left());
  (*node)->stop();
  node->reset();
  log->info("event=node_stopped node={}", cfg->node_id);
  spdlog::default_logger()->flush();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string{argv[1]} == "--help" || std::string{argv[1]} == "-h"
      || std::string{argv[1]} == "help") {
    std::cout << usage << app::serve_options_help() << usage_tail;
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  auto flags = app::read_flags(argc, argv, 2);
  if (cmd == "serve")
    return serve_command(flags);
  if (cmd == "token")
    return token_command(flags);
  if (cmd == "migrate")
    return migrate_command(flags);
  if (cmd == "fake-provider")
    return fake_provider_command(flags);
  if (cmd == "routes") {
    for (auto& r : gateway::route_table())
      std::cout << gateway::method_name(r.verb) << ' ' << r.pattern << ' '
                << gateway::access_name(r.rule) << '\n';
    return 0;
  }
  std::cerr << "emporium: unknown command '" << cmd << "' (see --help)\n";
  return 2;
}
