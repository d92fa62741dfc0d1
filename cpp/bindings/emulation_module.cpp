// rnnkit._cuda_emulation: the CUDA backend's algorithm over host memory (cpp/src/cuda/
// emulation.cpp), with the device bindings the CUDA module has, taking NumPy arrays through
// their __array_interface__. Private, for the tests: they run it against rnnkit.reference on
// machines without a GPU.
#include <pybind11/pybind11.h>

#include "bindings/device_recurrent.h"

PYBIND11_MODULE(_cuda_emulation, m) {
  m.doc() = "The CUDA backend's time loops and kernels run on the host (tests only)";
  rnnkit::bindings::device_recurrent_init(
      m, {&rnnkit::cuda_emulated_backend(), "__array_interface__", "a NumPy array", nullptr});
}
