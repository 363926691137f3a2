// bitswarm: the one helper of TVM's "../support/utils.h" the thread pool uses (IsNumber).
//
// Written for bitswarm's native runner (hw/native).
#ifndef BITSWARM_TVM_SUPPORT_UTILS_H_
#define BITSWARM_TVM_SUPPORT_UTILS_H_

#include <cctype>
#include <string>

namespace tvm {
namespace support {

/*! \brief Whether `s` is a non-empty string of decimal digits. */
inline bool IsNumber(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace support
}  // namespace tvm

#endif  // BITSWARM_TVM_SUPPORT_UTILS_H_
