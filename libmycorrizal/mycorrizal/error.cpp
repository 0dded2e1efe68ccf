// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/error.hpp"

namespace mycorrizal {

std::string to_string(const error& x) {
  std::string result{to_string(x.code())};
  if (!x.context().empty()) {
    result += ": ";
    result += x.context();
  }
  return result;
}

} // namespace mycorrizal
