// GEMM glue: OpenBLAS through dlopen (no link-time dependency, so the extension imports
// wherever the scipy-openblas32 wheel is installed), with a plain fallback that is correct
// but slow, used only when OpenBLAS cannot be loaded.
#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <string>

#include "rnnkit/runtime.h"

namespace rnnkit {
namespace {

// CBLAS enum values (cblas.h): row-major 101, no-trans 111, trans 112.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*,
                         int, float, float*, int);
using DgemmFn = void (*)(int, int, int, int, int, int, double, const double*, int,
                         const double*, int, double, double*, int);
using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();
using GetStringFn = char* (*)();

struct BlasLibrary {
  SgemmFn sgemm = nullptr;
  DgemmFn dgemm = nullptr;
  SetThreadsFn set_threads = nullptr;
  GetThreadsFn get_threads = nullptr;
  GetStringFn get_config = nullptr;
  GetStringFn get_corename = nullptr;
};

BlasLibrary g_blas;
std::mutex g_blas_mutex;

template <typename T>
void fallback_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                   int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    T* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) c[j] = beta == T(0) ? T(0) : beta * c[j];
    for (int64_t k = 0; k < K; ++k) {
      const T a = alpha * (ta ? A[k * lda + i] : A[i * lda + k]);
      if (!tb) {
        const T* b = B + k * ldb;
        for (int64_t j = 0; j < N; ++j) c[j] += a * b[j];
      } else {
        for (int64_t j = 0; j < N; ++j) c[j] += a * B[j * ldb + k];
      }
    }
  }
}

// C = beta * C: what a GEMM with an empty inner dimension computes (cblas rejects K = 0
// with a leading dimension of 0, so it is handled here).
template <typename T>
void scale_only(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
}

}  // namespace

bool load_blas(const std::string& path, std::string* error) {
  std::lock_guard<std::mutex> lock(g_blas_mutex);
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    if (error) *error = dlerror();
    return false;
  }
  BlasLibrary lib;
  lib.sgemm = reinterpret_cast<SgemmFn>(dlsym(handle, "scipy_cblas_sgemm"));
  lib.dgemm = reinterpret_cast<DgemmFn>(dlsym(handle, "scipy_cblas_dgemm"));
  lib.set_threads = reinterpret_cast<SetThreadsFn>(dlsym(handle, "scipy_openblas_set_num_threads"));
  lib.get_threads = reinterpret_cast<GetThreadsFn>(dlsym(handle, "scipy_openblas_get_num_threads"));
  lib.get_config = reinterpret_cast<GetStringFn>(dlsym(handle, "scipy_openblas_get_config"));
  lib.get_corename = reinterpret_cast<GetStringFn>(dlsym(handle, "scipy_openblas_get_corename"));
  if (!lib.sgemm || !lib.dgemm || !lib.set_threads || !lib.get_threads) {
    if (error) *error = "scipy_cblas_sgemm/dgemm or scipy_openblas_*_num_threads not found in " + path;
    dlclose(handle);
    return false;
  }
  g_blas = lib;  // the handle stays open for the life of the process
  g_blas.set_threads(1);  // parallelised from rnnkit's pool instead (see gemm below)
  return true;
}

std::string blas_name() {
  if (!g_blas.sgemm) return "builtin (slow fallback: OpenBLAS not loaded)";
  return g_blas.get_config ? std::string(g_blas.get_config()) : std::string("OpenBLAS");
}

std::string blas_corename() {
  return g_blas.get_corename ? std::string(g_blas.get_corename()) : std::string();
}

int blas_num_threads() { return g_blas.get_threads ? g_blas.get_threads() : 1; }

namespace {

void serial_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (g_blas.sgemm)
    g_blas.sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, int(M), int(N),
                 int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
  else
    fallback_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void serial_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                 const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                 double* C, int64_t ldc) {
  if (g_blas.dgemm)
    g_blas.dgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, int(M), int(N),
                 int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
  else
    fallback_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

// Splits C into row or column panels (whichever dimension is longer), one single-threaded
// BLAS call per panel on rnnkit's pool. Products under 2^22 multiply-adds (~100 us on one core)
// stay on one thread: waking the pool costs tens of microseconds on a VM (measured: with a
// 2^19 threshold, one-step LSTM/GRU backward calls ran 1.5-2x slower on 2 threads than on 1).
template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return scale_only(M, N, beta, C, ldc);
  const int64_t threads = get_num_threads();
  if (threads <= 1 || M * N * K < kMinParallelWork)
    return serial_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const bool split_rows = M >= N;
  const int64_t extent = split_rows ? M : N;
  const int64_t panels = std::min(threads, extent);
  parallel_for(panels, [&](int64_t p) {
    const int64_t begin = extent * p / panels, end = extent * (p + 1) / panels;
    if (split_rows)  // rows [begin, end) of op(A) and of C
      serial_gemm(ta, tb, end - begin, N, K, alpha, ta ? A + begin : A + begin * lda, lda, B,
                  ldb, beta, C + begin * ldc, ldc);
    else  // columns [begin, end) of op(B) and of C
      serial_gemm(ta, tb, M, end - begin, K, alpha, A, lda, tb ? B + begin * ldb : B + begin,
                  ldb, beta, C + begin, ldc);
  });
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace rnnkit
