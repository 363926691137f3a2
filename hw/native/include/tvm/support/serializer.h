// bitswarm: the binary encoding TVM's runtime uses for serialized objects (<tvm/support/serializer.h>).
//
// Written for bitswarm's native runner (hw/native). It must read what the TVM that compiled a model
// wrote (the Relax VM executable embedded in an exported library), so the encoding is TVM's:
//   - trivially copyable values (integers, floats, enums, DLDataType, DLDevice, ...): their bytes
//   - std::string, ffi::String: uint64 length, then the bytes
//   - std::vector<T>, ffi::Array<T>: uint64 count, then the elements (one block when trivially copyable)
//   - anything else: an explicit specialization of Serializer<T> (TVM's headers add some, e.g. for
//     the VM's function table), or a class with Save(Stream*) const and bool Load(Stream*)
// Little-endian only (every CPU bitswarm targets is): a big-endian build fails to compile.
#ifndef BITSWARM_TVM_SUPPORT_SERIALIZER_H_
#define BITSWARM_TVM_SUPPORT_SERIALIZER_H_

#include <tvm/ffi/container/array.h>
#include <tvm/ffi/endian.h>
#include <tvm/ffi/string.h>
#include <tvm/support/io.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

static_assert(TVM_FFI_IO_NO_ENDIAN_SWAP, "bitswarm's serializer supports little-endian targets only");

namespace tvm {
namespace support {
namespace detail {

template <typename T, typename = void>
struct HasSaveLoad : std::false_type {};
template <typename T>
struct HasSaveLoad<T, std::void_t<decltype(std::declval<const T&>().Save(std::declval<Stream*>())),
                                  decltype(std::declval<T&>().Load(std::declval<Stream*>()))>>
    : std::true_type {};

template <typename T>
constexpr bool kIsPod = std::is_trivially_copyable<T>::value && !HasSaveLoad<T>::value;

inline void WriteCount(Stream* strm, uint64_t n) { strm->Write(&n, sizeof(n)); }
inline bool ReadCount(Stream* strm, uint64_t* n) { return strm->Read(n, sizeof(*n)) == sizeof(*n); }

inline void WriteChars(Stream* strm, const char* data, size_t size) {
  WriteCount(strm, size);
  if (size) strm->Write(data, size);
}
inline bool ReadChars(Stream* strm, std::string* out) {
  uint64_t n;
  if (!ReadCount(strm, &n)) return false;
  out->resize(static_cast<size_t>(n));
  return n == 0 || strm->Read(&(*out)[0], out->size()) == out->size();
}

}  // namespace detail

/*! \brief How a T is written to and read from a Stream (specialize it for a new type). */
template <typename T, typename Enable = void>
struct Serializer {
  static_assert(detail::HasSaveLoad<T>::value, "no tvm::support::Serializer for this type");
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const T& value) { value.Save(strm); }
  static bool Read(Stream* strm, T* out) { return out->Load(strm); }
};

template <typename T>
struct Serializer<T, std::enable_if_t<detail::kIsPod<T>>> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const T& value) { strm->Write(&value, sizeof(T)); }
  static bool Read(Stream* strm, T* out) { return strm->Read(out, sizeof(T)) == sizeof(T); }
};

template <>
struct Serializer<std::string> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const std::string& s) { detail::WriteChars(strm, s.data(), s.size()); }
  static bool Read(Stream* strm, std::string* out) { return detail::ReadChars(strm, out); }
};

template <>
struct Serializer<ffi::String> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const ffi::String& s) { detail::WriteChars(strm, s.data(), s.size()); }
  static bool Read(Stream* strm, ffi::String* out) {
    std::string s;
    if (!detail::ReadChars(strm, &s)) return false;
    *out = ffi::String(std::move(s));
    return true;
  }
};

template <typename T>
struct Serializer<std::vector<T>> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const std::vector<T>& v) {
    detail::WriteCount(strm, v.size());
    if constexpr (detail::kIsPod<T>) {
      if (!v.empty()) strm->Write(v.data(), sizeof(T) * v.size());
    } else {
      for (const T& x : v) Serializer<T>::Write(strm, x);
    }
  }
  static bool Read(Stream* strm, std::vector<T>* out) {
    uint64_t n;
    if (!detail::ReadCount(strm, &n)) return false;
    out->resize(static_cast<size_t>(n));
    if constexpr (detail::kIsPod<T>) {
      size_t bytes = sizeof(T) * out->size();
      return bytes == 0 || strm->Read(out->data(), bytes) == bytes;
    } else {
      for (T& x : *out) {
        if (!Serializer<T>::Read(strm, &x)) return false;
      }
      return true;
    }
  }
};

template <typename T>
struct Serializer<ffi::Array<T>> {
  static constexpr bool enabled = true;
  static void Write(Stream* strm, const ffi::Array<T>& a) {
    detail::WriteCount(strm, a.size());
    for (const T& x : a) Serializer<T>::Write(strm, x);
  }
  static bool Read(Stream* strm, ffi::Array<T>* out) {
    uint64_t n;
    if (!detail::ReadCount(strm, &n)) return false;
    ffi::Array<T> a;
    for (uint64_t i = 0; i < n; ++i) {
      T x;
      if (!Serializer<T>::Read(strm, &x)) return false;
      a.push_back(std::move(x));
    }
    *out = std::move(a);
    return true;
  }
};

}  // namespace support
}  // namespace tvm

#endif  // BITSWARM_TVM_SUPPORT_SERIALIZER_H_
