// Built with -mavx2 -mfma; reached only after dispatch.cpp has checked the CPU.
#include "cpu/simd/vec_avx2.h"
#include "cpu/simd/pointwise.h"

namespace rnnkit {

void fill_avx2_kernels(PointwiseKernels<float>& f, PointwiseKernels<double>& d) {
  simd::Pointwise<simd::Avx2Vec<float>>::fill(f);
  simd::Pointwise<simd::Avx2Vec<double>>::fill(d);
}

}  // namespace rnnkit
