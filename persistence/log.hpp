#pragma once

#include "protocols/logging.hpp"

namespace emporium::persistence {

/// The folder's logger ("persistence").
inline spdlog::logger* log() {
  static auto instance = protocols::named_logger("persistence");
  return instance.get();
}

} // namespace emporium::persistence
