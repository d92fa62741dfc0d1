// rnnkit._cuda: the CUDA backend (cpp/src/cuda/backend.cu) for arrays in CUDA device memory
// (__cuda_array_interface__: CuPy, ...), and what the CUDA runtime sees, for `rnnkit info`.
// Built only with CMake RNNKIT_CUDA=ON; rnnkit imports it lazily, on the first device array.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cuda_runtime_api.h>  // CUDART_VERSION

#include "bindings/device_recurrent.h"
#include "cuda/runtime_info.h"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "rnnkit's CUDA backend (use rnnkit.functional with CuPy arrays, not this module)";
  rnnkit::bindings::device_recurrent_init(
      m, {&rnnkit::cuda_backend(), "__cuda_array_interface__",
          "a CUDA device array (CuPy, or any object with __cuda_array_interface__)",
          &rnnkit::cuda::check_device_pointer});
  m.def("device_count", [] {
    std::string error;
    const int n = rnnkit::cuda::device_count(&error);
    return py::make_tuple(n, error);
  }, "(devices the CUDA runtime sees, the runtime's error when it sees none)");
  m.def("devices", [] {
    py::list out;
    for (const auto& d : rnnkit::cuda::devices()) {
      py::dict e;
      e["ordinal"] = d.ordinal;
      e["name"] = d.name;
      e["compute_capability"] = std::to_string(d.major) + "." + std::to_string(d.minor);
      e["memory_bytes"] = d.memory;
      out.append(e);
    }
    return out;
  }, "One dict per visible device: ordinal, name, compute_capability, memory_bytes");
  m.def("build_info", [] {
    py::dict d;
    d["cuda_runtime_built"] = CUDART_VERSION;
    d["cuda_runtime"] = rnnkit::cuda::runtime_version();
    d["cuda_driver"] = rnnkit::cuda::driver_version();
    d["architectures"] = std::string(RNNKIT_CUDA_ARCHITECTURES);
    return d;
  }, "CUDA runtime version built against and loaded, driver version (0: none), the "
     "architectures compiled (CMake CUDA_ARCHITECTURES)");
}
