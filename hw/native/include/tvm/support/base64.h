// bitswarm: base64 streams, as TVM's runtime sources include them ("../support/base64.h").
//
// Written for bitswarm's native runner (hw/native); tensor.cc uses them for a tensor's JSON form,
// which the runner never needs, so they buffer the whole payload and use tvm-ffi's base64 codec.
#ifndef BITSWARM_TVM_SUPPORT_BASE64_H_
#define BITSWARM_TVM_SUPPORT_BASE64_H_

#include <tvm/ffi/extra/base64.h>
#include <tvm/support/io.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string>

namespace tvm {
namespace support {

/*! \brief Base64-encodes what is written into `out` when Finish() is called. */
class Base64OutStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  explicit Base64OutStream(Stream* out) : out_(out) {}
  size_t Read(void*, size_t) final { return 0; }
  size_t Write(const void* ptr, size_t size) final {
    raw_.append(static_cast<const char*>(ptr), size);
    return size;
  }
  void Finish() {
    ffi::String text = ffi::Base64Encode(TVMFFIByteArray{raw_.data(), raw_.size()});
    out_->Write(text.data(), text.size());
    raw_.clear();
  }

 private:
  Stream* out_;
  std::string raw_;
};

/*! \brief Decodes the base64 text of `in` (whitespace ignored) once InitPosition() was called. */
class Base64InStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  explicit Base64InStream(Stream* in) : in_(in) {}
  void InitPosition() {
    std::string text;
    char buf[4096];
    for (size_t n; (n = in_->Read(buf, sizeof(buf))) > 0;) {
      for (size_t i = 0; i < n; ++i) {
        if (!std::isspace(static_cast<unsigned char>(buf[i]))) text.push_back(buf[i]);
      }
    }
    ffi::Bytes raw = ffi::Base64Decode(TVMFFIByteArray{text.data(), text.size()});
    raw_.assign(raw.data(), raw.size());
    pos_ = 0;
  }
  size_t Read(void* ptr, size_t size) final {
    size_t n = std::min(size, raw_.size() - pos_);
    if (n) std::memcpy(ptr, raw_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  size_t Write(const void*, size_t) final { return 0; }

 private:
  Stream* in_;
  std::string raw_;
  size_t pos_ = 0;
};

}  // namespace support
}  // namespace tvm

#endif  // BITSWARM_TVM_SUPPORT_BASE64_H_
