#pragma once

#include "gateway/json_codec.hpp"

#include <caf/error.hpp>

#include <string>

/// The one mapping from an error to what a client sees, for HTTP answers and
/// WebSocket error frames alike.
namespace emporium::gateway {

/// An error as a client sees it: the contract's code, the HTTP status, the
/// body (`error`, `message`, and `field` or `available` where known) and,
/// for 429 and 503, the Retry-After seconds.
struct error_reply {
  errc code;
  unsigned status;
  json::object body;
  unsigned retry_after = 0;
};

/// The contract's HTTP status of a code (400, 401, 403, 404, 405, 409, 413, 429, 503).
unsigned http_status(errc code) noexcept;

error_reply to_reply(errc code, std::string message, json::object extra = {});
error_reply to_reply(const field_error& e);
/// An actor's error: its errc, and from its context the message, the field
/// ((field, message) pairs) or, for insufficient_stock, `available`.
error_reply to_reply(const caf::error& err);

/// The reply as a WebSocket frame: its body with "type":"error" and `extra`
/// (what the frame is about, e.g. the topic or the item).
std::string error_frame(const error_reply& r, json::object extra = {});

} // namespace emporium::gateway
