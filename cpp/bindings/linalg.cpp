// Dense-product op family: C = alpha * op(A) @ op(B) + beta * C on rnnkit's own pool
// (rnnkit::gemm: OpenBLAS single-threaded, parallelised over panels of C). The layers' dense
// products go through here so that training and inference never wake a second BLAS pool
// (NumPy's) whose spinning threads would compete with rnnkit's for the same cores.
#include <algorithm>
#include <climits>

#include "bindings/checks.h"
#include "bindings/without_gil.h"
#include "rnnkit/runtime.h"

namespace rnnkit::bindings {

namespace {

// A: stored (M, K), or (K, M) when trans_a; B: stored (K, N), or (N, K) when trans_b; C: (M, N).
template <typename T>
void gemm_impl(const py::array& A, bool trans_a, const py::array& B, bool trans_b, py::array& C,
               T alpha, T beta) {
  if (A.ndim() != 2 || B.ndim() != 2 || C.ndim() != 2)
    throw py::value_error("gemm: A, B and C must be 2-D");
  const int64_t M = C.shape(0), N = C.shape(1);
  const int64_t K = trans_a ? A.shape(0) : A.shape(1);
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
    throw py::value_error("gemm: dimensions must be below 2^31 (the BLAS takes int sizes)");
  const T* a = checked_input<T>(A, "A", trans_a ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K});
  const T* b = checked_input<T>(B, "B", trans_b ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N});
  T* c = checked_output<T>(C, "C", {M, N});
  if (M == 0 || N == 0) return;
  // ld = the stored row length; never 0 (BLAS requires ld >= 1 even for empty operands).
  without_gil([&] {
    gemm<T>(trans_a, trans_b, M, N, K, alpha, a, std::max<int64_t>(1, A.shape(1)), b,
            std::max<int64_t>(1, B.shape(1)), beta, c, N);
  });
}

}  // namespace

void linalg_init(py::module_& m) {
  m.def("gemm",
        [](const py::array& A, bool trans_a, const py::array& B, bool trans_b, py::array C,
           double alpha, double beta) {
          if (has_dtype<float>(C))
            gemm_impl<float>(A, trans_a, B, trans_b, C, float(alpha), float(beta));
          else if (has_dtype<double>(C))
            gemm_impl<double>(A, trans_a, B, trans_b, C, alpha, beta);
          else
            throw py::type_error("gemm: C must be float32 or float64");
        },
        py::arg("A"), py::arg("trans_a"), py::arg("B"), py::arg("trans_b"), py::arg("C"),
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        "C = alpha * op(A) @ op(B) + beta * C in place, on rnnkit's thread pool; all C-contiguous.");
}

}  // namespace rnnkit::bindings
