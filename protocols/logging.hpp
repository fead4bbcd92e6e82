#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>

namespace emporium::protocols {

/// A folder's logger: shares the default logger's sinks and format, takes its
/// level from SPDLOG_LEVEL (e.g. SPDLOG_LEVEL=info,gateway=debug).
inline std::shared_ptr<spdlog::logger> named_logger(const std::string& name) {
  if (auto existing = spdlog::get(name))
    return existing;
  auto made = spdlog::default_logger()->clone(name);
  spdlog::initialize_logger(made);
  return made;
}

} // namespace emporium::protocols
