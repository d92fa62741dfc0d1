// Tile shapes of the packed recurrent product on one ISA (see tile_sweep.h): R rows x U weight
// vectors of accumulators, Pointwise::tile_block<R, U>. Built twice by CMake (RNNKIT_BENCH):
// with SWEEP_AVX512 and the AVX-512 flags, and with the AVX2 flags.
#include "tile_sweep.h"

#if defined(SWEEP_AVX512)
#include "cpu/simd/vec_avx512.h"
#define SHAPES kAvx512TileShapes
using Vec = rnnkit::simd::Avx512Vec<float>;
#else
#include "cpu/simd/vec_avx2.h"
#define SHAPES kAvx2TileShapes
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

// every tile and gate block over all M rows, split evenly into blocks as packed_gemm does
template <int R, int U>
void step(const float* A, const float* P, float* C, int64_t M, int64_t H) {
  constexpr int64_t span = U * Vec::width, G = 4;
  const int64_t tiles = (H + span - 1) / span, ldc = G * tiles * span, blocks = (M + R - 1) / R;
  for (int64_t tile = 0; tile < tiles; ++tile)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t blk = 0, r = 0; blk < blocks; ++blk) {
        const int64_t rows = (M - r) / (blocks - blk);
        const int64_t n_valid = H - tile * span < span ? H - tile * span : span;
        block_of<R, U>(rows, A + r * H, H, H, P + (g * tiles + tile) * H * span,
                       C + r * ldc + (g * tiles + tile) * span, ldc, n_valid);
        r += rows;
      }
}

template <int R, int U>
constexpr bench::TileShape shape() {
  return {R, U, Vec::width, U == Kernel::pack_vectors() && R == Kernel::rows_per_block(),
          step<R, U>};
}

}  // namespace

namespace bench {

#if defined(SWEEP_AVX512)
const TileShape SHAPES[] = {shape<14, 2>(), shape<10, 2>(), shape<8, 2>(), shape<9, 3>(),
                            shape<6, 3>(),  shape<6, 4>(),  shape<5, 4>(), shape<4, 4>(),
                            shape<4, 6>(),  {0, 0, 0, false, nullptr}};
#else
const TileShape SHAPES[] = {shape<6, 2>(), shape<4, 2>(), shape<4, 3>(), shape<3, 3>(),
                            shape<2, 4>(), shape<2, 5>(), {0, 0, 0, false, nullptr}};
#endif

}  // namespace bench
