// bitswarm: <tvm/support/cuda/nvtx.h> for a CPU-only runtime: NVTX ranges are no-ops.
//
// Written for bitswarm's native runner (hw/native). This file's directory is also an -iquote
// directory of the unity build (see tvm_runtime_unity.cc) so that "../../support/x.h" from
// src/runtime/vm/*.cc resolves to the sibling headers in tvm/support/.
#ifndef BITSWARM_TVM_SUPPORT_CUDA_NVTX_H_
#define BITSWARM_TVM_SUPPORT_CUDA_NVTX_H_

#include <string>

namespace tvm {
namespace support {

class NVTXScopedRange {
 public:
  explicit NVTXScopedRange(const char*) {}
  explicit NVTXScopedRange(const std::string&) {}
  NVTXScopedRange(const NVTXScopedRange&) = delete;
  NVTXScopedRange& operator=(const NVTXScopedRange&) = delete;
};

}  // namespace support
}  // namespace tvm

#endif  // BITSWARM_TVM_SUPPORT_CUDA_NVTX_H_
