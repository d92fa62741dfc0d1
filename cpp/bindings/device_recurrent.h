// Bindings of a device backend's recurrent op family (rnnkit._cuda, and rnnkit._cuda_emulation
// for the tests). Arrays arrive as any object exposing an array interface (CuPy arrays:
// __cuda_array_interface__; the emulation: NumPy's __array_interface__) and are checked here
// (dtype, C-contiguity, shape, and that the memory is the backend's) before the GIL is
// released: the core trusts its pointers. Outputs are allocated by the caller (rnnkit's
// Python layer, with the array library of the device) and passed in.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "rnnkit/backend.h"

namespace rnnkit::bindings {

namespace py = pybind11;

struct DeviceModule {
  const Backend* backend;
  const char* interface;   // the array-interface attribute the arrays must expose
  const char* what;        // what such an array is, for messages ("a CUDA device array")
  // "" when p (non-null) is memory of `device` the backend can use, else why not
  std::string (*check_pointer)(const void* p, int device);
};

// Registers forward, backward and the handle class on m.
void device_recurrent_init(py::module_& m, const DeviceModule& spec);

}  // namespace rnnkit::bindings
