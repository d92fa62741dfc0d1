// Portable kernels: built for the baseline ISA, always present, the oracle for the others.
#include "cpu/simd/pointwise.h"

namespace rnnkit {

void fill_scalar_kernels(PointwiseKernels<float>& f, PointwiseKernels<double>& d) {
  simd::Pointwise<simd::ScalarVec<float>>::fill(f);
  simd::Pointwise<simd::ScalarVec<double>>::fill(d);
}

}  // namespace rnnkit
