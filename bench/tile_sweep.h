// The tile shapes bench_step's `tiles` mode times. tile_sweep.cpp is built once per SIMD ISA
// with that ISA's flags and holds only kernel code (no standard-library templates, which the
// linker could share with baseline code): the caller allocates and times.
#pragma once

#include <cstdint>

namespace bench {

// One LSTM step's product (M rows, K = H, 4 gate blocks) with R x U tiles: A [M, H] row-major,
// P the packed weights of that U ([4 * tiles][H][U * width], tiles = ceil(H / (U * width))),
// C [M, 4 * tiles * U * width].
using StepProduct = void (*)(const float* A, const float* P, float* C, int64_t M, int64_t H);

struct TileShape {
  int R, U, width;
  bool used;  // the shape the library's kernels use on this ISA
  StepProduct run;
};

// every R x U with R*U accumulators + U weight vectors + 1 broadcast within the registers;
// each list ends with R == 0
extern const TileShape kAvx2TileShapes[];
extern const TileShape kAvx512TileShapes[];

}  // namespace bench
