// bitswarm: the minimal byte-stream interface TVM's runtime sources expect as <tvm/support/io.h>.
//
// Written for bitswarm's native runner (hw/native); the apache-tvm wheel ships sources that include
// this header but not the header itself. Only what the runtime sources compiled by
// tvm_runtime_unity.cc call is provided: raw Read/Write, typed Read/Write of one value and of
// arrays (the encoding of each type lives in serializer.h).
#ifndef BITSWARM_TVM_SUPPORT_IO_H_
#define BITSWARM_TVM_SUPPORT_IO_H_

#include <cstddef>

namespace tvm {
namespace support {
template <typename T, typename Enable>
struct Serializer;  // serializer.h

/*! \brief A sequential binary stream. */
class Stream {
 public:
  virtual ~Stream() = default;
  /*! \return the number of bytes read (fewer than size at the end of the stream) */
  virtual size_t Read(void* ptr, size_t size) = 0;
  /*! \return the number of bytes written */
  virtual size_t Write(const void* ptr, size_t size) = 0;

  /*! \brief Write one value in the serializer's encoding. */
  template <typename T>
  void Write(const T& value) {
    Serializer<T, void>::Write(this, value);
  }
  /*! \brief Read one value; false when the stream ends early or is malformed. */
  template <typename T>
  bool Read(T* out) {
    return Serializer<T, void>::Read(this, out);
  }
  template <typename T>
  void WriteArray(const T* data, size_t n) {
    for (size_t i = 0; i < n; ++i) Write(data[i]);
  }
  template <typename T>
  bool ReadArray(T* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (!Read(data + i)) return false;
    }
    return true;
  }
};

}  // namespace support
}  // namespace tvm

#include <tvm/support/serializer.h>  // NOLINT(build/include_order): the encodings Stream uses

#endif  // BITSWARM_TVM_SUPPORT_IO_H_
