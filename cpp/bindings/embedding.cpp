// Embedding op family: the scatter-add backward (the forward is a NumPy take).
#include "bindings/checks.h"
#include "rnnkit/embedding.h"

namespace rnnkit::bindings {

namespace {

template <typename T>
void embedding_backward_impl(const py::array& ids, const py::array& dout, py::array& dW,
                             int64_t skip_id) {
  const int64_t N = ids.size();
  if (dW.ndim() != 2) throw py::value_error("dW must be 2-D (V, D)");
  const int64_t V = dW.shape(0), D = dW.shape(1);
  const int64_t* id = checked_input<int64_t>(ids, "ids", {N});
  const T* g = checked_input<T>(dout, "dout", {N, D});
  T* out = checked_output<T>(dW, "dW", {V, D});
  for (int64_t n = 0; n < N; ++n)  // bounds are checked before any write
    if (id[n] < 0 || id[n] >= V)
      throw py::index_error("ids[" + std::to_string(n) + "] = " + std::to_string(id[n]) +
                            " is outside [0, " + std::to_string(V) + ")");
  py::gil_scoped_release release;
  embedding_backward<T>(id, N, g, D, out, skip_id);
}

}  // namespace

void embedding_init(py::module_& m) {
  m.def("embedding_backward",
        [](const py::array& ids, const py::array& dout, py::array dW, int64_t skip_id) {
          if (has_dtype<float>(dW))
            embedding_backward_impl<float>(ids, dout, dW, skip_id);
          else
            embedding_backward_impl<double>(ids, dout, dW, skip_id);
        },
        py::arg("ids"), py::arg("dout"), py::arg("dW"), py::arg("skip_id"),
        "dW[ids[n]] += dout[n] in place; ids: (N,) int64, dout: (N, D), dW: (V, D). "
        "Rows whose id equals skip_id are skipped (-1 for none).");
}

}  // namespace rnnkit::bindings
