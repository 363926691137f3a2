// bitswarm: the TVM CPU runtime (tvm-ffi + Relax VM) as ONE translation unit, for hw/native/runner.cc.
//
// Modelled on TVM's web/emcc/wasm_runtime.cc, which builds the wasm runtime the same way. The .cc
// files included below are NOT in this repository: they are the runtime sources shipped in the
// apache-tvm and apache-tvm-ffi wheels (Apache License 2.0; see tvm/LICENSE, tvm/NOTICE and
// apache_tvm_ffi-*.dist-info/licenses/LICENSE in site-packages), compiled from the installed wheels
// by bitswarm.hw.tvm_native.build_runner. Include paths it passes (all needed):
//
//   -I hw/native/include            tvm/support/*.h: written for bitswarm (the wheel's sources include
//                                   io, serializer, bytes_io, base64, utils and cuda/nvtx but do not ship them)
//   -I <tvm>/include -I <tvm_ffi>/include
//   -I <tvm> -I <tvm_ffi>           "src/runtime/..." and "src/ffi/..." below
//   -iquote hw/native/include/tvm/support        "../support/{bytes_io,base64,utils}.h" of src/runtime/*.cc
//   -iquote hw/native/include/tvm/support/cuda   "../../support/..." of src/runtime/vm/*.cc
//
// Defines: TVM_FFI_USE_LIBBACKTRACE=0 (no libbacktrace), TVM_FFI_BACKTRACE_ON_SEGFAULT=0,
// TVM_LOG_CUSTOMIZE=0 (logging.cc's default LOG sink: stderr), TVM_LOG_DEBUG=0, NDEBUG.
//
// Left out on purpose (a float32 CPU model from bitswarm's TVM flow needs none of them):
//   RPC (src/runtime/rpc: the runner runs on the board itself; sockets and compile time for nothing),
//   disco (multi-device sessions), all device back-ends other than the CPU, and extra/contrib
//   (BLAS/DNNL/sort/random/...: several need headers or libraries the wheel does not ship); a model
//   that calls one of their functions fails when the VM looks it up, naming the missing function;
//   builtin_fp16.cc (its compiler-rt header is not in the wheel; fp16 models need libgcc's helpers);
//   const_loader_module.cc and static_library.cc (module kinds of BYOC/external codegen and of
//   static-library export, not in a plain LLVM export; loading one fails naming its loader);
//   the language-model parts of the Relax VM (KV caches, attention back-ends, tensor cache,
//   lm_support); tvm-ffi reflection/serialization/structural-equality extras and its testing module.
#include <tvm/ffi/any.h>
#include <tvm/ffi/reflection/registry.h>
#include <tvm/runtime/logging.h>

// --- tvm-ffi: objects, functions, errors, modules (dlopen'ed libraries) ---
#include "src/ffi/backtrace.cc"
#include "src/ffi/container.cc"
#include "src/ffi/custom_allocator.cc"
#include "src/ffi/dtype.cc"
#include "src/ffi/error.cc"
#include "src/ffi/extra/env_c_api.cc"
#include "src/ffi/extra/env_context.cc"
#include "src/ffi/extra/json_parser.cc"
#include "src/ffi/extra/json_writer.cc"
#include "src/ffi/extra/library_module.cc"
#include "src/ffi/extra/library_module_dynamic_lib.cc"
#include "src/ffi/extra/library_module_system_lib.cc"
#include "src/ffi/extra/module.cc"
#include "src/ffi/function.cc"
#include "src/ffi/init_once.cc"
#include "src/ffi/object.cc"
#include "src/ffi/tensor.cc"

// --- TVM runtime: CPU device, tensors, workspaces, thread pool, the backend API of compiled code ---
#include "src/runtime/cpu_device_api.cc"
#include "src/runtime/device_api.cc"
#include "src/runtime/file_utils.cc"
#include "src/runtime/logging.cc"
#include "src/runtime/module.cc"
#include "src/runtime/tensor.cc"
#include "src/runtime/thread_pool.cc"
#include "src/runtime/threading_backend.cc"
#include "src/runtime/timer.cc"
#include "src/runtime/workspace_pool.cc"

// --- Relax VM ---
#include "src/runtime/memory/memory_manager.cc"
#include "src/runtime/vm/builtin.cc"
#include "src/runtime/vm/bytecode.cc"
#include "src/runtime/vm/executable.cc"
#include "src/runtime/vm/vm.cc"
