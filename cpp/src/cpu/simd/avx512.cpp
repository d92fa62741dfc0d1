// Built with -mavx512f -mavx512dq ...; reached only after dispatch.cpp has checked the CPU.
#include "cpu/simd/vec_avx512.h"
#include "cpu/simd/pointwise.h"

namespace rnnkit {

void fill_avx512_kernels(PointwiseKernels<float>& f, PointwiseKernels<double>& d) {
  simd::Pointwise<simd::Avx512Vec<float>>::fill(f);
  simd::Pointwise<simd::Avx512Vec<double>>::fill(d);
}

}  // namespace rnnkit
