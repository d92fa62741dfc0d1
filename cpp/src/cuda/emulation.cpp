// The CUDA backend's algorithm (cuda/recurrent.h, cuda/steps.h, cuda/gate_math.h) over host
// memory: each "kernel" is a loop over its elements and the GEMM is a column-major reference
// with cuBLAS's argument conventions, so the tests check on any machine everything of the
// CUDA backend except the CUDA runtime and cuBLAS themselves. Slow on purpose (plain loops):
// it is a test of the maths and the indexing, not a second CPU backend.
#include <cstring>
#include <memory>

#include "cuda/recurrent.h"
#include "rnnkit/backend.h"

namespace rnnkit::cuda {
namespace {

struct HostDevice {
  static constexpr const char* kName = "cuda_emulated";

  class Memory {
   public:
    Memory() = default;
    explicit Memory(size_t bytes) : data_(new double[(bytes + sizeof(double) - 1) / sizeof(double)]) {}
    void* data() const { return data_.get(); }

   private:
    std::unique_ptr<double[]> data_;  // double: aligned for every element type
  };

  explicit HostDevice(const CallDesc&) {}
  Memory alloc(size_t bytes) {
    Memory m(bytes);
    // device memory starts as garbage: NaN bytes make a read of an unwritten element show
    std::memset(m.data(), 0xff, bytes);
    return m;
  }
  void adopt(Memory&) {}
  void zero(void* p, size_t bytes) { if (bytes) std::memset(p, 0, bytes); }
  void copy(void* dst, const void* src, size_t bytes) { if (bytes) std::memmove(dst, src, bytes); }
  void upload(void* dst, const void* src, size_t bytes) { copy(dst, src, bytes); }
  template <class F>
  void for_each(int64_t n, const F& f) {
    for (int64_t i = 0; i < n; ++i) f(i);
  }
  // cuBLAS's gemm: column-major C [m, n] = alpha op(A) op(B) + beta C, op(A) [m, k]; with
  // beta = 0, C is not read (it may hold NaN)
  template <typename T>
  void gemm_cm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* A,
               int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
    if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m)
      throw std::logic_error("gemm_cm: a leading dimension is smaller than cuBLAS allows");
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        T acc = 0;
        for (int64_t l = 0; l < k; ++l)
          acc += (ta ? A[l + i * lda] : A[i + l * lda]) * (tb ? B[j + l * ldb] : B[l + j * ldb]);
        T& c = C[i + j * ldc];
        c = beta == T(0) ? alpha * acc : alpha * acc + beta * c;
      }
  }
};

}  // namespace
}  // namespace rnnkit::cuda

namespace rnnkit {

const Backend& cuda_emulated_backend() {
  static const cuda::DeviceBackend<cuda::HostDevice> backend;
  return backend;
}

}  // namespace rnnkit
