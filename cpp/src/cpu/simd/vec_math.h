// Vectorised exp / sigmoid / tanh for the SIMD vector types, written once over their common
// interface (load, store, arithmetic, fmadd, clamp, round, pow2).
//
// exp: x is clamped to a range just wider than where e^x is finite and non-zero (so +-inf and
// huge inputs give the IEEE results inf and 0 without integer overflow in the exponent),
// reduced as x = n ln2 + r with |r| <= ln2/2 (ln2 split in a high and low part so the
// reduction is exact to the working precision), e^r from its Taylor series, and
// e^x = e^r 2^n1 2^n2 with n = n1 + n2 split in halves so that each power of two is a normal
// number even where e^x itself overflows or is subnormal. Truncation error of the series:
// |r|^(d+1)/(d+1)! = 5e-9 for float (degree 7, below float's 6e-8 epsilon) and 1.7e-16 for
// double (degree 12), so normal results are within a few ulp of the exact value.
// NaN stays NaN (the clamps keep NaN operands).
// sigmoid(x) = 1 / (1 + e^-x): saturates to 0 (1/inf) or 1 without NaN.
// tanh(x) = 2 sigmoid(2x) - 1: absolute error a few ulp of 1 (relative error grows as
// x -> 0, where tanh itself goes to 0; gradients and states only need absolute accuracy).
#pragma once

namespace rnnkit::simd {

template <typename T>
struct ExpConstants;
template <>
struct ExpConstants<float> {
  static constexpr float lo = -105.0f, hi = 89.0f;  // e^-105 rounds to 0, e^89 to inf
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
  static constexpr int degree = 7;
};
template <>
struct ExpConstants<double> {
  static constexpr double lo = -750.0, hi = 710.0;  // e^-750 rounds to 0, e^710 to inf
  static constexpr double log2e = 1.4426950408889634074;
  static constexpr double ln2_hi = 0.693145751953125, ln2_lo = 1.42860682030941723212e-6;
  static constexpr int degree = 12;
};

template <typename T, int Degree>
struct InverseFactorials {
  T c[Degree + 1];
  constexpr InverseFactorials() : c() {
    c[0] = 1;
    for (int k = 1; k <= Degree; ++k) c[k] = c[k - 1] / T(k);
  }
};

template <class V>
inline V vexp(V x) {
  using T = typename V::Scalar;
  using C = ExpConstants<T>;
  x = V::clamp(x, V::set1(C::lo), V::set1(C::hi));
  const V n = V::round(x * V::set1(C::log2e));
  V r = V::fmadd(n, V::set1(-C::ln2_hi), x);
  r = V::fmadd(n, V::set1(-C::ln2_lo), r);
  // Horner over 1/k!, k = degree .. 0
  static constexpr InverseFactorials<T, C::degree> coef{};
  V p = V::set1(coef.c[C::degree]);
  for (int k = C::degree - 1; k >= 0; --k) p = V::fmadd(p, r, V::set1(coef.c[k]));
  const V n1 = V::floor(n * V::set1(T(0.5)));
  return p * V::pow2(n1) * V::pow2(n - n1);
}

template <class V>
inline V vsigmoid(V x) {
  const V one = V::set1(1);
  return one / (one + vexp(V::set1(0) - x));
}

template <class V>
inline V vtanh(V x) {
  const V one = V::set1(1);
  return V::set1(2) * vsigmoid(x + x) - one;
}

}  // namespace rnnkit::simd
