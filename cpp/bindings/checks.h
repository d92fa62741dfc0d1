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

// Returns the data pointer of `obj` after checking it is a C-contiguous array of T with exactly
// `shape`; None gives nullptr when `optional`. Throws ValueError/TypeError naming `name`.
template <typename T>
T* checked_data(const py::handle& obj, const char* name, const std::vector<int64_t>& shape,
                bool optional = false) {
  if (obj.is_none()) {
    if (optional) return nullptr;
    throw py::type_error(std::string(name) + " must be an array, got None");
  }
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array");
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " +
                         std::string(py::str(py::dtype::of<T>())) + ", got " +
                         std::string(py::str(arr.dtype())));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  std::vector<int64_t> actual(arr.shape(), arr.shape() + arr.ndim());
  if (actual != shape)
    throw py::value_error(std::string(name) + " must have shape " + shape_str(shape) + ", got " +
                          shape_str(actual));
  return static_cast<T*>(arr.mutable_data());
}

template <typename T>
py::array_t<T> new_array(const std::vector<int64_t>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  return py::array_t<T>(s);
}

}  // namespace rnnkit::bindings
