// Runtime controls: BLAS loading, threads, SIMD ISA, build information, and the vectorised
// elementwise maths (exposed so tests can compare every ISA with the scalar path).
#include <pybind11/stl.h>

#include "bindings/checks.h"
#include "rnnkit/runtime.h"

namespace rnnkit::bindings {

namespace {

Isa parse_isa(const std::string& name) {
  if (name == "scalar") return Isa::Scalar;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  throw py::value_error("isa must be one of 'scalar', 'avx2', 'avx512', got '" + name + "'");
}

template <typename T>
py::array elementwise_impl(const std::string& fn, py::array x, Isa isa) {
  const int64_t n = x.size();
  const T* src = checked_input<T>(x, "x", {n});
  py::array_t<T> y = new_array<T>({n});
  Elementwise which;
  if (fn == "exp") which = Elementwise::Exp;
  else if (fn == "sigmoid") which = Elementwise::Sigmoid;
  else if (fn == "tanh") which = Elementwise::Tanh;
  else throw py::value_error("fn must be 'exp', 'sigmoid' or 'tanh', got '" + fn + "'");
  T* dst = y.mutable_data();
  {
    py::gil_scoped_release release;
    elementwise<T>(which, isa, src, dst, n);
  }
  return y;
}

}  // namespace

void runtime_init(py::module_& m) {
  m.def("load_blas", [](const std::string& path) {
    std::string error;
    bool ok = load_blas(path, &error);
    return py::make_tuple(ok, error);
  }, "dlopen OpenBLAS from path; returns (ok, error message)");
  m.def("blas_name", &blas_name);
  m.def("blas_corename", &blas_corename);
  m.def("blas_num_threads", &blas_num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n must be >= 1, got " + std::to_string(n));
    set_num_threads(n);
  });
  m.def("get_num_threads", &get_num_threads);
  m.def("scratch_bytes", &scratch_bytes, "Bytes the threads' scratch arenas hold now");
  m.def("release_memory", [] {
    py::gil_scoped_release release;
    return release_memory();
  }, "Frees the scratch arenas and stops the pool's workers (they restart when needed); False "
     "when another thread was running a parallel region, whose workers were kept");
  m.def("_inject_allocation_failure", [](int64_t nth, bool workers_only) {
    if (nth < 0) throw py::value_error("nth must be >= 0, got " + std::to_string(nth));
    inject_allocation_failure(nth, workers_only);
  }, py::arg("nth"), py::arg("workers_only") = false,
     "TEST ONLY: the nth scratch allocation from now on (on any thread, or on the pool's "
     "workers only) throws std::bad_alloc, which reaches Python as MemoryError; 0 disarms");
  m.def("_pending_allocation_failures", [] { return pending_allocation_failures(); },
        "TEST ONLY: what is left of the countdown _inject_allocation_failure set (0: fired or off)");
  m.def("default_num_threads", &default_num_threads);
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("isa_environment_note", &isa_environment_note);
  m.def("supported_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
      if (isa_supported(isa)) out.push_back(isa_name(isa));
    return out;
  });
  m.def("set_isa", [](const std::string& name) {
    Isa isa = parse_isa(name);
    if (!set_isa(isa))
      throw py::value_error("isa '" + name + "' is not supported on this CPU or build");
  });
  m.def("build_info", [] {
    py::dict d;
    d["compiler"] = std::string(__VERSION__);
    d["simd_mode"] = std::string(RNNKIT_SIMD_MODE);
#ifdef NDEBUG
    d["build_type"] = "release";
#else
    d["build_type"] = "debug";
#endif
    return d;
  });
  m.def("fma_peak_gflops", [](const std::string& isa, const std::string& dtype, int runs) {
    if (dtype != "float32" && dtype != "float64")
      throw py::value_error("dtype must be 'float32' or 'float64', got '" + dtype + "'");
    if (runs < 1) throw py::value_error("runs must be >= 1, got " + std::to_string(runs));
    const Isa which = parse_isa(isa);
    py::gil_scoped_release release;
    return dtype == "float32" ? fma_peak_gflops<float>(which, runs)
                              : fma_peak_gflops<double>(which, runs);
  }, py::arg("isa"), py::arg("dtype") = "float32", py::arg("runs") = 5,
     "GFLOP/s of a register-only FMA loop of `isa` on every pool thread at once (best of `runs`)");
  m.def("elementwise", [](const std::string& fn, py::array x, const std::string& isa) -> py::array {
    if (has_dtype<float>(x)) return elementwise_impl<float>(fn, x, parse_isa(isa));
    return elementwise_impl<double>(fn, x, parse_isa(isa));
  }, py::arg("fn"), py::arg("x"), py::arg("isa"),
     "Vectorised exp/sigmoid/tanh of a 1-D array with the given ISA's kernels (for tests)");
}

}  // namespace rnnkit::bindings
