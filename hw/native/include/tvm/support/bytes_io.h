// bitswarm: in-memory streams over bytes, as TVM's runtime sources include them ("../support/bytes_io.h").
//
// Written for bitswarm's native runner (hw/native). BytesInStream reads a buffer it does not own: the
// std::string / ffi::Bytes passed in must outlive the stream (every runtime call site keeps it alive).
#ifndef BITSWARM_TVM_SUPPORT_BYTES_IO_H_
#define BITSWARM_TVM_SUPPORT_BYTES_IO_H_

#include <tvm/ffi/string.h>
#include <tvm/support/io.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace tvm {
namespace support {

/*! \brief Appends everything written to a std::string. */
class BytesOutStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  explicit BytesOutStream(std::string* out) : out_(out) {}
  size_t Read(void*, size_t) final { return 0; }
  size_t Write(const void* ptr, size_t size) final {
    out_->append(static_cast<const char*>(ptr), size);
    return size;
  }

 private:
  std::string* out_;
};

/*! \brief Reads a byte buffer from its start. */
class BytesInStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  BytesInStream(const char* data, size_t size) : data_(data), size_(size) {}
  explicit BytesInStream(const std::string& s) : BytesInStream(s.data(), s.size()) {}
  explicit BytesInStream(const ffi::Bytes& b) : BytesInStream(b.data(), b.size()) {}
  size_t Read(void* ptr, size_t size) final {
    size_t n = std::min(size, size_ - pos_);
    if (n) std::memcpy(ptr, data_ + pos_, n);
    pos_ += n;
    return n;
  }
  size_t Write(const void*, size_t) final { return 0; }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace support
}  // namespace tvm

#endif  // BITSWARM_TVM_SUPPORT_BYTES_IO_H_
