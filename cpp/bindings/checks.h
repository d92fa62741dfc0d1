// Argument checks shared by the binding files: the core trusts its pointers and shapes, so
// every array is checked here (dtype, C-contiguity, shape) before the GIL is released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <unistd.h>

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

namespace rnnkit::bindings {

namespace py = pybind11;

inline std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

// True when `arr` holds native-order T. Not dtype identity (`.is`): an unpickled or
// otherwise rebuilt array carries an equal but distinct dtype object.
template <typename T>
bool has_dtype(const py::array& arr) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(arr.dtype().ptr(),
                                                         py::dtype::of<T>().ptr());
}

// Returns `obj` as an array after checking it is a C-contiguous array of T with exactly
// `shape`. Throws ValueError/TypeError naming `name`.
template <typename T>
py::array checked_array(const py::handle& obj, const char* name, const std::vector<int64_t>& shape) {
  if (obj.is_none()) throw py::type_error(std::string(name) + " must be an array, got None");
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array");
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!has_dtype<T>(arr))
    throw py::type_error(std::string(name) + " must have dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(arr.dtype())));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  std::vector<int64_t> actual(arr.shape(), arr.shape() + arr.ndim());
  if (actual != shape)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(actual));
  return arr;
}

// An array the core only reads: read-only arrays (np.load mmap_mode="r", np.frombuffer,
// np.broadcast_to, other libraries' exports) are accepted, so no mutable_data() here.
// None gives nullptr when `optional`.
template <typename T>
const T* checked_input(const py::handle& obj, const char* name, const std::vector<int64_t>& shape,
                       bool optional = false) {
  if (optional && obj.is_none()) return nullptr;
  return static_cast<const T*>(checked_array<T>(obj, name, shape).data());
}

// An array the core writes into in place: it must also be writeable.
template <typename T>
T* checked_output(const py::handle& obj, const char* name, const std::vector<int64_t>& shape) {
  py::array arr = checked_array<T>(obj, name, shape);
  if (!arr.writeable()) throw py::value_error(std::string(name) + " must be writeable");
  return static_cast<T*>(arr.mutable_data());
}

// Bytes of physical memory (0 when unknown).
inline uint64_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
}

// Product of non-negative sizes, or UINT64_MAX when it overflows (then no machine holds it).
inline uint64_t saturating_product(std::initializer_list<int64_t> factors) {
  uint64_t out = 1;
  for (int64_t f : factors) {
    if (f < 0 || __builtin_mul_overflow(out, uint64_t(f), &out)) return UINT64_MAX;
  }
  return out;
}

inline uint64_t saturating_sum(uint64_t a, uint64_t b) {
  uint64_t out;
  return __builtin_add_overflow(a, b, &out) ? UINT64_MAX : out;
}

inline uint64_t saturating_bytes(uint64_t elements, size_t itemsize) {
  uint64_t out;
  return __builtin_mul_overflow(elements, uint64_t(itemsize), &out) ? UINT64_MAX : out;
}

// MemoryError, raised before anything is allocated, when a call's buffers (`bytes`, computed
// without overflow) exceed the machine's physical memory: they could never be filled, and
// with memory overcommitted the allocation itself might succeed and the process be killed.
inline void check_fits_in_memory(uint64_t bytes, const std::string& call) {
  const uint64_t limit = physical_memory();
  if (limit == 0 || bytes <= limit) return;
  auto gib = [](uint64_t b) {
    std::ostringstream o;
    o.setf(std::ios::fixed);
    o.precision(1);
    o << double(b) / double(uint64_t(1) << 30) << " GiB";
    return o.str();
  };
  const std::string message =
      call + " needs " + (bytes == UINT64_MAX ? std::string("more bytes than 2**64") : gib(bytes)) +
      " for its outputs and buffers, more than this machine's " + gib(limit) +
      " of memory; use a smaller batch, fewer hidden units or shorter sequences (segment=)";
  PyErr_SetString(PyExc_MemoryError, message.c_str());
  throw py::error_already_set();
}

template <typename T>
py::array_t<T> new_array(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<T>(s);
}

}  // namespace rnnkit::bindings
