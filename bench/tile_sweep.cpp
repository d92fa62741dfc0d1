// Tile shapes of the packed recurrent product, timed on one ISA: R rows x U weight vectors of
// accumulators (Pointwise::tile_block<R, U>), over the packed layout of that U. Built twice by
// CMake (RNNKIT_BENCH), with SWEEP_AVX512 and the AVX-512 flags or with the AVX2 flags; reached
// from bench_step.cpp's `tiles` mode only after the CPU is checked.
#include <cstdint>
#include <string>
#include <vector>

#include "timing.h"
#if defined(SWEEP_AVX512)
#include "cpu/simd/vec_avx512.h"
#define SWEEP_FUNCTION tile_sweep_avx512
using Vec = rnnkit::simd::Avx512Vec<float>;
#else
#include "cpu/simd/vec_avx2.h"
#define SWEEP_FUNCTION tile_sweep_avx2
using Vec = rnnkit::simd::Avx2Vec<float>;
#endif
#include "cpu/simd/pointwise.h"

namespace {

using Kernel = rnnkit::simd::Pointwise<Vec>;

// a block of exactly `rows` (<= R) rows, as Pointwise::block_of, for any U
template <int R, int U>
void block_of(int64_t rows, const float* A, int64_t lda, int64_t K, const float* P, float* C,
              int64_t ldc, int64_t n_valid) {
  if constexpr (R >= 1) {
    if (rows == R) Kernel::tile_block<R, U>(A, lda, K, P, C, ldc, n_valid, false);
    else block_of<R - 1, U>(rows, A, lda, K, P, C, ldc, n_valid);
  }
}

// GFLOP/s per thread of one LSTM step's product (M rows, K = H, 4 gate blocks) with R x U
// tiles, on `threads` threads at once (each its own rows and outputs, one shared Wh).
template <int R, int U>
double gflops_per_thread(int64_t M, int64_t H, int threads, int repeats) {
  constexpr int64_t span = U * Vec::width, G = 4;
  const int64_t tiles = (H + span - 1) / span;
  bench::StepOperands op(size_t(G * tiles * H * span), size_t(M * H), size_t(M * G * tiles * span),
                        threads);
  const int64_t ldc = G * tiles * span, blocks = (M + R - 1) / R;
  auto step = [&](int t) {
    for (int64_t tile = 0; tile < tiles; ++tile)
      for (int64_t g = 0; g < G; ++g)
        for (int64_t blk = 0, r = 0; blk < blocks; ++blk) {
          const int64_t rows = (M - r) / (blocks - blk);
          block_of<R, U>(rows, op.A[size_t(t)].data() + r * H, H, H,
                         op.P.data() + (g * tiles + tile) * H * span,
                         op.C[size_t(t)].data() + r * ldc + (g * tiles + tile) * span, ldc,
                         std::min(span, H - tile * span));
          r += rows;
        }
  };
  const double seconds = bench::median_seconds_concurrent(step, threads, repeats);
  return 2.0 * double(M * H * G * H) / seconds * 1e-9;
}

struct Shape {
  int R, U;
  double (*run)(int64_t, int64_t, int, int);
};

// every R x U with R*U accumulators + U weight vectors + 1 broadcast within the registers
#if defined(SWEEP_AVX512)
const Shape kShapes[] = {
    {14, 2, gflops_per_thread<14, 2>}, {10, 2, gflops_per_thread<10, 2>},
    {8, 2, gflops_per_thread<8, 2>},   {9, 3, gflops_per_thread<9, 3>},
    {6, 3, gflops_per_thread<6, 3>},   {6, 4, gflops_per_thread<6, 4>},
    {5, 4, gflops_per_thread<5, 4>},   {4, 4, gflops_per_thread<4, 4>},
    {4, 6, gflops_per_thread<4, 6>}};
#else
const Shape kShapes[] = {{6, 2, gflops_per_thread<6, 2>}, {4, 2, gflops_per_thread<4, 2>},
                         {4, 3, gflops_per_thread<4, 3>}, {3, 3, gflops_per_thread<3, 3>},
                         {2, 4, gflops_per_thread<2, 4>}, {2, 5, gflops_per_thread<2, 5>}};
#endif

}  // namespace

namespace bench {

struct TileResult {
  int R, U;
  bool chosen;  // the shape the library uses on this ISA
  double gflops;
};

std::vector<TileResult> SWEEP_FUNCTION(int64_t M, int64_t H, int threads, int repeats) {
  std::vector<TileResult> out;
  for (const Shape& s : kShapes)
    out.push_back({s.R, s.U, s.U == Kernel::pack_vectors() && s.R == Kernel::rows_per_block(),
                   s.run(M, H, threads, repeats)});
  return out;
}

}  // namespace bench
