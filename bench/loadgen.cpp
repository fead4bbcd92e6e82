// A small HTTP/1.1 keep-alive load generator: C connections over T threads,
// as fast as possible (--rate 0) or paced to a total rate. Latency is taken
// from each request's *scheduled* send time, so a stalled server shows up in
// the percentiles instead of silently lowering the offered load. Why not wrk:
// Debian's wrk cannot pace requests, and every figure should come from one tool.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using clk = std::chrono::steady_clock;

struct options {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string method = "GET", path = "/healthz", body;
  std::vector<std::string> headers;
  int connections = 64, threads = 2;
  double duration = 10, rate = 0;
  /// > 0: every "{n}" in path and body is a uniformly random integer in
  /// [0, spread) per request (traffic spread over many keys).
  int spread = 0;
  /// A file of bearer tokens, one per line: one request text per token (many
  /// distinct buyers), each with its own Authorization header.
  std::string tokens;
  /// Send every request text exactly once (no --duration loop): N buyers who
  /// each ask once. The run ends when every one is answered.
  bool once = false;
};

struct result {
  std::vector<double> latencies_ms;
  std::map<int, long> statuses;
  long errors = 0;
  int connected = 0; ///< connections open at the start
  clk::time_point first_send = clk::time_point::max(), last_answer = clk::time_point::min();
};

struct conn {
  int fd = -1;
  bool busy = false;
  clk::time_point scheduled;
  std::string in;
};

int connect_to(const options& o) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(o.port));
  inet_pton(AF_INET, o.host.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

/// Complete response in `in`? Returns its length and status, or 0.
size_t complete(const std::string& in, int& status) {
  auto end = in.find("\r\n\r\n");
  if (end == std::string::npos)
    return 0;
  size_t len = 0;
  auto cl = in.find("Content-Length: ");
  if (cl != std::string::npos && cl < end)
    len = std::strtoul(in.c_str() + cl + 16, nullptr, 10);
  if (in.size() < end + 4 + len)
    return 0;
  status = std::atoi(in.c_str() + 9);
  return end + 4 + len;
}

std::string with_n(std::string s, const std::string& n) {
  for (auto at = s.find("{n}"); at != std::string::npos; at = s.find("{n}", at + n.size()))
    s.replace(at, 3, n);
  return s;
}

/// The request texts to send: one, or one per key of --spread and per token
/// (as many as the larger of the two; key i % spread with token i % tokens),
/// built up front, so the generator does no per-request formatting.
std::vector<std::string> requests(const options& o, const std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  auto count = std::max({1, o.spread, static_cast<int>(tokens.size())});
  for (int i = 0; i < count; ++i) {
    auto n = std::to_string(o.spread > 0 ? i % o.spread : i);
    auto path = o.spread > 0 ? with_n(o.path, n) : o.path;
    auto body = o.spread > 0 ? with_n(o.body, n) : o.body;
    std::string req = o.method + " " + path + " HTTP/1.1\r\nHost: " + o.host + "\r\n";
    for (auto& h : o.headers)
      req += h + "\r\n";
    if (!tokens.empty())
      req += "Authorization: Bearer " + tokens[i % tokens.size()] + "\r\n";
    if (!body.empty())
      req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size())
             + "\r\n";
    out.push_back(req + "\r\n" + body);
  }
  return out;
}

/// `reqs`: the request texts this thread sends (--once: each exactly once, in
/// order; else a random one per send until `stop`).
void worker(const options& o, const std::vector<std::string>& reqs, int nconn, double rate,
            clk::time_point start, clk::time_point stop, result& out) {
  size_t next_once = 0;
  uint64_t rng = 0x9e3779b97f4a7c15ULL ^ reinterpret_cast<uintptr_t>(&out);
  std::vector<conn> cs(nconn);
  for (auto& c : cs)
    out.connected += (c.fd = connect_to(o)) >= 0;
  auto interval = rate > 0 ? std::chrono::duration<double>(1.0 / rate) : std::chrono::duration<double>(0);
  auto next = start;
  std::vector<pollfd> pfds(nconn);
  char buf[16384];
  while (true) {
    auto now = clk::now();
    bool sending = now < stop && (!o.once || next_once < reqs.size()); // --duration caps --once too
    bool any_busy = false;
    for (auto& c : cs) {
      if (c.fd < 0)
        continue;
      if (!c.busy && sending && (rate <= 0 || next <= now) && (!o.once || next_once < reqs.size())) {
        c.scheduled = rate > 0 ? next : now;
        if (rate > 0)
          next += std::chrono::duration_cast<clk::duration>(interval);
        rng ^= rng << 13; // xorshift64: cheap, and uniform enough for picking keys
        rng ^= rng >> 7;
        rng ^= rng << 17;
        const auto& req = o.once ? reqs[next_once++] : reqs[rng % reqs.size()];
        if (send(c.fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
          ++out.errors;
          close(c.fd);
          c.fd = connect_to(o);
          continue;
        }
        out.first_send = std::min(out.first_send, c.scheduled);
        c.busy = true;
      }
      any_busy = any_busy || c.busy;
    }
    if (!sending && !any_busy)
      break;
    for (int i = 0; i < nconn; ++i)
      pfds[i] = {cs[i].fd, static_cast<short>(cs[i].busy ? POLLIN : 0), 0};
    // Sleep until a response arrives or the next paced send is due (never spin:
    // the server under test shares the machine's cores).
    auto wait = std::chrono::nanoseconds{std::chrono::milliseconds{5}};
    bool idle = std::any_of(cs.begin(), cs.end(), [](auto& c) { return c.fd >= 0 && !c.busy; });
    if (rate > 0 && sending && idle)
      wait = std::clamp<std::chrono::nanoseconds>(next - clk::now(), std::chrono::nanoseconds{0}, wait);
    timespec ts{0, static_cast<long>(wait.count())};
    if (ppoll(pfds.data(), nconn, &ts, nullptr) <= 0)
      continue;
    for (int i = 0; i < nconn; ++i) {
      auto& c = cs[i];
      if (!(pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      auto n = recv(c.fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        ++out.errors;
        close(c.fd);
        c = conn{};
        c.fd = connect_to(o);
        continue;
      }
      c.in.append(buf, static_cast<size_t>(n));
      int status = 0;
      while (auto len = complete(c.in, status)) {
        out.last_answer = clk::now();
        out.latencies_ms.push_back(
          std::chrono::duration<double, std::milli>(out.last_answer - c.scheduled).count());
        ++out.statuses[status];
        c.in.erase(0, len);
        c.busy = false;
      }
    }
  }
  for (auto& c : cs)
    if (c.fd >= 0)
      close(c.fd);
}

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") o.host = v;
    else if (k == "--port") o.port = std::atoi(v.c_str());
    else if (k == "--method") o.method = v;
    else if (k == "--path") o.path = v;
    else if (k == "--body") o.body = v;
    else if (k == "--header") o.headers.push_back(v);
    else if (k == "--connections") o.connections = std::atoi(v.c_str());
    else if (k == "--threads") o.threads = std::atoi(v.c_str());
    else if (k == "--duration") o.duration = std::atof(v.c_str());
    else if (k == "--rate") o.rate = std::atof(v.c_str());
    else if (k == "--spread") o.spread = std::atoi(v.c_str());
    else if (k == "--tokens") o.tokens = v;
    else if (k == "--once") o.once = v == "1";
    else {
      std::fprintf(stderr, "loadgen: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  std::vector<std::string> tokens;
  if (!o.tokens.empty()) {
    std::FILE* f = std::fopen(o.tokens.c_str(), "r");
    if (!f) {
      std::fprintf(stderr, "loadgen: cannot read %s\n", o.tokens.c_str());
      return 2;
    }
    char line[4096];
    while (std::fgets(line, sizeof(line), f)) {
      std::string t{line};
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r'))
        t.pop_back();
      if (!t.empty())
        tokens.push_back(std::move(t));
    }
    std::fclose(f);
  }
  auto all_reqs = requests(o, tokens);
  std::vector<std::vector<std::string>> per_thread(o.threads);
  for (size_t i = 0; i < all_reqs.size(); ++i) // --once: thread t sends t, t + T, ...
    per_thread[o.once ? i % o.threads : 0].push_back(all_reqs[i]);
  std::vector<result> results(o.threads);
  std::vector<std::thread> ts;
  auto start = clk::now() + std::chrono::milliseconds{50};
  auto stop = start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(o.duration));
  for (int t = 0; t < o.threads; ++t) {
    int n = o.connections / o.threads + (t < o.connections % o.threads ? 1 : 0);
    const auto& reqs = o.once ? per_thread[t] : per_thread[0];
    ts.emplace_back(worker, std::cref(o), std::cref(reqs), n, o.rate / o.threads, start, stop,
                    std::ref(results[t]));
  }
  for (auto& t : ts)
    t.join();
  result all;
  for (auto& r : results) {
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    for (auto& [s, n] : r.statuses)
      all.statuses[s] += n;
    all.errors += r.errors;
    all.connected += r.connected;
    all.first_send = std::min(all.first_send, r.first_send);
    all.last_answer = std::max(all.last_answer, r.last_answer);
  }
  // --once: the rate over the time from the first send to the last answer.
  auto seconds = o.once && !all.latencies_ms.empty()
                   ? std::chrono::duration<double>(all.last_answer - all.first_send).count()
                   : o.duration;
  std::sort(all.latencies_ms.begin(), all.latencies_ms.end());
  auto pct = [&](double p) {
    if (all.latencies_ms.empty())
      return 0.0;
    return all.latencies_ms[std::min(all.latencies_ms.size() - 1,
                                     static_cast<size_t>(p * all.latencies_ms.size()))];
  };
  std::printf("requests=%zu rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%ld connected=%d statuses=",
              all.latencies_ms.size(), all.latencies_ms.size() / seconds, pct(0.50), pct(0.99),
              all.errors, all.connected);
  for (auto& [s, n] : all.statuses)
    std::printf("%d:%ld,", s, n);
  std::printf("\n");
}
