#pragma once

#include "gateway/errors.hpp"
#include "gateway/json_codec.hpp"
#include "gateway/jwt.hpp"
#include "gateway/routes.hpp"
#include "cluster/seam.hpp"
#include "protocols/errc.hpp"
#include "protocols/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace emporium::cluster {
class stock_view;
class shard_table;
}

namespace emporium::gateway {

struct gateway_config;

/// One HTTP request being answered, as a handler sees it: the matched route,
/// the admitted caller, the body, and ways to answer and to ask actors. The
/// HTTP session implements it; handlers never see Beast. Every answer goes
/// through respond/fail exactly once.
class exchange {
public:
  virtual ~exchange() = default;

  // -- the request ----------------------------------------------------------------
  virtual std::string_view body() const = 0;
  virtual std::string_view header(std::string_view name) const = 0;
  virtual const gateway_config& config() const = 0;
  const route_match& matched() const { return match_; }
  const std::string& param(std::string_view name) const { return match_.param(name); }
  /// The admitted caller; only routes of rule `anyone` (and `optional_token`
  /// without a token) have none.
  const std::optional<principal>& caller() const { return caller_; }
  const principal& who() const { return *caller_; }
  const std::string& request_id() const { return request_id_; }

  /// The body as a strict reader of `allowed` fields, or nullopt after 400.
  std::optional<body_reader> read_body(std::initializer_list<const char*> allowed) {
    auto parsed = body_reader::parse(body(), allowed);
    if (auto* e = std::get_if<field_error>(&parsed)) {
      fail(*e);
      return std::nullopt;
    }
    return std::move(std::get<body_reader>(parsed));
  }

  /// An empty body, or nullopt after 400 (a body must be {}).
  bool body_empty_or_object() { return body().empty() || read_body({}).has_value(); }

  // -- answers ----------------------------------------------------------------------
  virtual void respond(unsigned status, json::object body) = 0;
  virtual void respond_text(unsigned status, std::string body, const char* content_type) = 0;
  virtual void fail(const error_reply& r) = 0;
  void fail(errc code, std::string message) { fail(to_reply(code, std::move(message))); }
  void fail(const field_error& e) { fail(to_reply(e)); }
  /// An actor's error: its errc, message, and for insufficient_stock `available`.
  void fail(const caf::error& err) { fail(to_reply(err)); }

  /// Hands the connection to a WebSocket session (the upgrade was checked).
  virtual void upgrade_storefront() = 0;
  virtual void upgrade_warehouse(std::string warehouse) = 0;

  // -- actors ------------------------------------------------------------------------
  /// Where messages for an entity go (cluster/seam).
  virtual caf::actor resolve(const protocols::entity_key& key) = 0;
  /// What answers readiness (ping -> ok when PostgreSQL answers).
  virtual caf::actor health() = 0;
  /// Durable levels of this node's live pairs (null: always ask).
  virtual const cluster::stock_view* stock_view() const = 0;
  /// This node's view of the cluster (null without one).
  virtual const cluster::shard_table* shards() const = 0;
  /// The membership table's actor (invalid without a cluster).
  virtual caf::actor membership() = 0;
  /// The request target (path and query).
  virtual std::string_view target() const = 0;

  /// Asks `target`; `done(exchange&, caf::expected<T>)` runs on the
  /// connection's strand, unless the request's deadline answered 503 first.
  template <class T, class Done>
  void ask(const caf::actor& target, caf::message msg, Done done);

  /// Asks the entity of `key`; `done(exchange&, caf::expected<R>)` with
  /// R = response_of_t<Msg>.
  template <class Msg, class Done>
  void ask_entity(const protocols::entity_key& key, Msg msg, Done done) {
    ask<protocols::response_of_t<Msg>>(resolve(key), cluster::routed(key, std::move(msg)),
                                       std::move(done));
  }

  /// Answers `status` with the entity's answer through `render`, or its error.
  template <class Msg, class Render>
  void ask_entity_and_answer(const protocols::entity_key& key, Msg msg, unsigned status,
                             Render render) {
    using T = protocols::response_of_t<Msg>;
    ask_entity(key, std::move(msg), [status, render](exchange& x, caf::expected<T> r) {
      if (!r)
        return x.fail(r.error());
      x.respond(status, render(*r));
    });
  }

protected:
  /// An answer the request waits for: keeps the exchange alive while it is out.
  struct ticket {
    std::shared_ptr<exchange> keep;
    uint64_t generation = 0;
  };
  /// Starts waiting for an actor's answer (arms the deadline).
  virtual ticket begin_wait() = 0;
  /// Runs `job` inside a bridge actor (it may send requests there).
  virtual void run_in_bridge(std::function<void(caf::event_based_actor*)> job) = 0;
  /// From a bridge: runs `f` on the connection's strand if `t` is still awaited.
  virtual void complete(const ticket& t, std::function<void(exchange&)> f) = 0;

  route_match match_;
  std::optional<principal> caller_;
  std::string request_id_;
};

/// Calls `deliver` exactly once: with the answer, or, if it is destroyed
/// unanswered, with an error. A bridge actor that crashed drops its queued
/// jobs and its pending response handlers silently (CAF 0.17); this turns
/// both into an answer at once instead of a wait for the deadline: a job that
/// never ran sent nothing (`unavailable`), a request sent and never answered
/// may have taken effect (`outcome_unknown`).
template <class T, class Deliver>
class answer_once {
public:
  explicit answer_once(Deliver d) : deliver_(std::move(d)) {}
  answer_once(const answer_once&) = delete;
  answer_once& operator=(const answer_once&) = delete;
  ~answer_once() {
    if (!deliver_)
      return;
    if (sent_)
      (*this)(caf::make_error(errc::outcome_unknown,
                              std::string{"the gateway's bridge actor went down meanwhile"}));
    else
      (*this)(caf::make_error(errc::unavailable,
                              std::string{"the gateway's bridge actor went down; retry"}));
  }
  void sent() noexcept { sent_ = true; }
  void operator()(caf::expected<T> x) {
    auto d = std::move(*deliver_);
    deliver_.reset();
    d(std::move(x));
  }

private:
  std::optional<Deliver> deliver_;
  bool sent_ = false;
};

/// Sends `msg` to `target` from inside a bridge actor; `answer` (an
/// answer_once) gets the reply or the error.
template <class T, class Answer>
std::function<void(caf::event_based_actor*)> request_job(caf::actor target, caf::message msg,
                                                         std::shared_ptr<Answer> answer) {
  return [target = std::move(target), msg = std::move(msg),
          answer = std::move(answer)](caf::event_based_actor* self) mutable {
    answer->sent();
    self->request(target, caf::infinite, std::move(msg))
      .then([answer](T& x) { (*answer)(std::move(x)); },
            [answer](caf::error& err) { (*answer)(std::move(err)); });
  };
}

template <class T, class Done>
void exchange::ask(const caf::actor& target, caf::message msg, Done done) {
  auto t = begin_wait();
  auto deliver = [t, done = std::make_shared<Done>(std::move(done))](caf::expected<T> r) {
    t.keep->complete(t, [done, r = std::move(r)](exchange& e) mutable { (*done)(e, std::move(r)); });
  };
  run_in_bridge(request_job<T>(target, std::move(msg),
                               std::make_shared<answer_once<T, decltype(deliver)>>(std::move(deliver))));
}

} // namespace emporium::gateway
