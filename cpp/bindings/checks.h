// Argument checks shared by the binding files: the core trusts its pointers and shapes, so
// every array is checked here (dtype, C-contiguity, shape) before the GIL is released.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
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

template <typename T>
py::array_t<T> new_array(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<T>(s);
}

}  // namespace rnnkit::bindings
