#pragma once

#include <map>
#include <string>

namespace emporium::test {

/// `tool MODE --key value ...` as {"--key": "value"} (the test tools' argument form).
inline std::map<std::string, std::string> tool_flags(int argc, char** argv) {
  std::map<std::string, std::string> out;
  for (int i = 2; i + 1 < argc; i += 2)
    out[argv[i]] = argv[i + 1];
  return out;
}

} // namespace emporium::test
