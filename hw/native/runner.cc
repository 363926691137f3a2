// bitswarm native runner: run a TVM-exported Relax model library on a CPU without Python.
//
//   runner MODEL.so INPUT.bin OUTPUT.bin [--shape 1,3,32,32] [--repeat N] [--threads N]
//
// Loads MODEL.so (tvm.compile(...).export_library) as TVM's Python does for
// relax.VirtualMachine(tvm.runtime.load_module(path), tvm.cpu()): Module::LoadFromFile, then the
// executable's "vm_load_executable" and "vm_initialization" (CPU, pooled allocator). Reads INPUT.bin
// (raw little-endian float32, C order, of --shape, or of "input_shape" in MODEL.json next to the
// library), runs "main" once for the result and --repeat more times for the timings, writes the
// first output as raw float32 to OUTPUT.bin and prints ONE JSON line to stdout:
//   {"output_shape": [...], "input_shape": [...], "repeat": N, "threads": N, "num_outputs": K,
//    "load_ms": .., "first_call_ms": .., "latency_ms_median": .., "latency_ms_min": .., "latency_ms_mean": ..}
// Errors: one line "runner: <what>" on stderr, exit status 2.
//
// Linked with the TVM runtime (tvm_runtime_unity.cc) and -rdynamic: the model library resolves
// TVMFFI* symbols from this executable.
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/json.h>
#include <tvm/ffi/extra/module.h>
#include <tvm/ffi/function.h>
#include <tvm/runtime/tensor.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using tvm::ffi::Any;
using tvm::ffi::Function;
using tvm::ffi::Module;
using Clock = std::chrono::steady_clock;

constexpr int kPooledAllocator = 2;  // relax.VirtualMachine.POOLED_ALLOCATOR
constexpr int kAffinityBig = 1;      // threading::ThreadGroup::kBig, the thread pool's default

struct Args {
  std::string lib, input, output, shape;
  int repeat = 1;
  int threads = 0;
};

[[noreturn]] void Fail(const std::string& what) { throw std::runtime_error(what); }

int ToInt(const std::string& flag, const std::string& text, int minimum) {
  char* end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v < minimum || v > 1000000) {
    Fail(flag + " needs an integer >= " + std::to_string(minimum) + ", got '" + text + "'");
  }
  return static_cast<int>(v);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s == "--shape" || s == "--repeat" || s == "--threads") {
      if (i + 1 >= argc) Fail(s + " needs a value");
      std::string v = argv[++i];
      if (s == "--shape") a.shape = v;
      if (s == "--repeat") a.repeat = ToInt(s, v, 0);
      if (s == "--threads") a.threads = ToInt(s, v, 0);
    } else if (s.size() > 1 && s[0] == '-') {
      Fail("unknown option " + s);
    } else {
      positional.push_back(s);
    }
  }
  if (positional.size() != 3) {
    Fail("usage: runner MODEL.so INPUT.bin OUTPUT.bin [--shape 1,3,32,32] [--repeat N] [--threads N]");
  }
  a.lib = positional[0], a.input = positional[1], a.output = positional[2];
  return a;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) Fail("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::vector<int64_t> ParseShape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream ss(text);
  for (std::string d; std::getline(ss, d, ',');) shape.push_back(ToInt("--shape", d, 1));
  if (shape.empty()) Fail("--shape is empty");
  return shape;
}

// "input_shape" of the <lib>.json that bitswarm.hw.tvm_build writes next to the library.
std::vector<int64_t> ShapeFromSidecar(const std::string& lib) {
  size_t dot = lib.rfind('.'), slash = lib.rfind('/');
  bool has_suffix = dot != std::string::npos && (slash == std::string::npos || dot > slash);
  std::string json_path = (has_suffix ? lib.substr(0, dot) : lib) + ".json";
  std::ifstream probe(json_path);
  if (!probe) Fail("no --shape given and no " + json_path + " next to the library");
  tvm::ffi::String err;
  Any doc = tvm::ffi::json::Parse(ReadFile(json_path), &err);
  if (!err.empty()) Fail(json_path + ": " + std::string(err));
  auto obj = doc.as<tvm::ffi::json::Object>();
  if (!obj.has_value() || !obj->count(tvm::ffi::String("input_shape"))) Fail(json_path + " has no input_shape");
  std::vector<int64_t> shape;
  for (const Any& d : obj->at(tvm::ffi::String("input_shape")).cast<tvm::ffi::json::Array>()) {
    shape.push_back(d.cast<int64_t>());
  }
  return shape;
}

// dlopen searches the library path for a name without '/': always pass it an absolute path.
std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) == nullptr) Fail("no library at " + path);
  return buf;
}

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

tvm::runtime::Tensor FirstOutput(const Any& out, size_t* num_outputs) {
  if (auto t = out.as<tvm::ffi::Tensor>()) {
    *num_outputs = 1;
    return tvm::runtime::Tensor(*t);
  }
  auto arr = out.as<tvm::ffi::Array<Any>>();
  if (!arr.has_value() || arr->empty()) Fail("main returned " + out.GetTypeKey() + ", not a tensor");
  *num_outputs = arr->size();
  auto t = (*arr)[0].as<tvm::ffi::Tensor>();
  if (!t.has_value()) Fail("main's first output is " + (*arr)[0].GetTypeKey() + ", not a tensor");
  return tvm::runtime::Tensor(*t);
}

std::string JsonInts(const int64_t* v, int n) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string JsonNumber(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

int Run(const Args& a) {
  std::vector<int64_t> shape = a.shape.empty() ? ShapeFromSidecar(a.lib) : ParseShape(a.shape);
  size_t count = std::accumulate(shape.begin(), shape.end(), size_t{1},
                                 [](size_t n, int64_t d) { return n * static_cast<size_t>(d); });
  std::string input = ReadFile(a.input);
  if (input.size() != count * sizeof(float)) {
    Fail(a.input + " has " + std::to_string(input.size()) + " bytes; shape " +
         JsonInts(shape.data(), static_cast<int>(shape.size())) + " of float32 needs " +
         std::to_string(count * sizeof(float)));
  }
  if (a.threads > 0) {
    Function::GetGlobalRequired("runtime.config_threadpool")(kAffinityBig, a.threads);
  }

  auto t0 = Clock::now();
  Module lib = Module::LoadFromFile(RealPath(a.lib));
  auto load = lib->GetFunction("vm_load_executable", true);
  if (!load.has_value()) Fail(a.lib + " is not a Relax VM executable (no vm_load_executable)");
  Module vm = (*load)().cast<Module>();
  vm->GetFunction("vm_initialization", false).value()(static_cast<int>(kDLCPU), 0, kPooledAllocator);
  auto main_fn = vm->GetFunction("main", false);
  if (!main_fn.has_value()) Fail(a.lib + " has no function main");
  double load_ms = Ms(t0, Clock::now());

  DLDevice cpu{kDLCPU, 0};
  tvm::runtime::Tensor x = tvm::runtime::Tensor::Empty(tvm::ffi::Shape(shape), DLDataType{kDLFloat, 32, 1}, cpu);
  x.CopyFromBytes(input.data(), input.size());

  auto t1 = Clock::now();
  Any out = (*main_fn)(x);
  double first_ms = Ms(t1, Clock::now());
  std::vector<double> times;
  for (int i = 0; i < a.repeat; ++i) {
    auto s = Clock::now();
    (*main_fn)(x);
    times.push_back(Ms(s, Clock::now()));
  }

  size_t num_outputs = 0;
  tvm::runtime::Tensor y = FirstOutput(out, &num_outputs);
  DLDataType dt = y->dtype;
  if (dt.code != kDLFloat || dt.bits != 32 || dt.lanes != 1) Fail("the output is not float32");
  size_t nbytes = tvm::ffi::GetDataSize(*y.operator->());
  std::vector<char> buf(nbytes);
  y.CopyToBytes(buf.data(), nbytes);
  std::ofstream f(a.output, std::ios::binary);
  if (!f.write(buf.data(), static_cast<std::streamsize>(nbytes)) || !f.flush()) Fail("cannot write " + a.output);

  std::string line = "{\"output_shape\": " + JsonInts(y->shape, y->ndim) +
                     ", \"input_shape\": " + JsonInts(shape.data(), static_cast<int>(shape.size())) +
                     ", \"repeat\": " + std::to_string(a.repeat) + ", \"threads\": " + std::to_string(a.threads) +
                     ", \"num_outputs\": " + std::to_string(num_outputs) + ", \"load_ms\": " + JsonNumber(load_ms) +
                     ", \"first_call_ms\": " + JsonNumber(first_ms);
  if (!times.empty()) {
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    size_t n = sorted.size();
    double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    double mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / n;
    line += ", \"latency_ms_median\": " + JsonNumber(median) + ", \"latency_ms_min\": " + JsonNumber(sorted[0]) +
            ", \"latency_ms_mean\": " + JsonNumber(mean);
  }
  std::printf("%s}\n", line.c_str());
  return 0;
}

std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

}  // namespace

// Debian 12's static libstdc++ (std::random_device, pulled in by its exception classes) calls
// arc4random, new in glibc 2.36. Defining it here keeps the runner's glibc floor at 2.34/2.35
// (Ubuntu 22.04, e.g. PYNQ v3 images); getrandom is glibc 2.25.
extern "C" uint32_t arc4random(void) noexcept {
  uint32_t v = 0;
  ssize_t n;
  do {
    n = getrandom(&v, sizeof(v), 0);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(v))) v ^= static_cast<uint32_t>(Clock::now().time_since_epoch().count());
  return v;
}

int main(int argc, char** argv) {
  try {
    return Run(ParseArgs(argc, argv));
  } catch (const tvm::ffi::Error& e) {
    std::fprintf(stderr, "runner: %s: %s\n", e.kind().c_str(), OneLine(e.message()).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runner: %s\n", OneLine(e.what()).c_str());
  }
  return 2;
}
