#pragma once

#include "protocols/logging.hpp"

namespace emporium::actors {

/// The folder's logger ("actors").
inline spdlog::logger* log() {
  static auto instance = protocols::named_logger("actors");
  return instance.get();
}

} // namespace emporium::actors
