// AVX-512 (F + DQ) vector types. Include only from a translation unit built with -mavx512f ...
#pragma once

#include <immintrin.h>

namespace rnnkit::simd {

template <typename T>
struct Avx512Vec;

template <>
struct Avx512Vec<float> {
  using Scalar = float;
  static constexpr int width = 16;
  static constexpr int registers = 32;
  __m512 v;

  static Avx512Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  static Avx512Vec set1(float x) { return {_mm512_set1_ps(x)}; }
  friend Avx512Vec operator+(Avx512Vec a, Avx512Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
  friend Avx512Vec operator-(Avx512Vec a, Avx512Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
  friend Avx512Vec operator*(Avx512Vec a, Avx512Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
  friend Avx512Vec operator/(Avx512Vec a, Avx512Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
  static Avx512Vec fmadd(Avx512Vec a, Avx512Vec b, Avx512Vec c) {
    return {_mm512_fmadd_ps(a.v, b.v, c.v)};
  }
  // AVX-512 max/min also return the second operand when either is NaN.
  static Avx512Vec clamp(Avx512Vec x, Avx512Vec lo, Avx512Vec hi) {
    return {_mm512_min_ps(hi.v, _mm512_max_ps(lo.v, x.v))};
  }
  static Avx512Vec relu(Avx512Vec x) { return {_mm512_max_ps(_mm512_setzero_ps(), x.v)}; }
  static Avx512Vec where_positive(Avx512Vec h, Avx512Vec g) {
    __mmask16 m = _mm512_cmp_ps_mask(h.v, _mm512_setzero_ps(), _CMP_GT_OQ);
    return {_mm512_maskz_mov_ps(m, g.v)};
  }
  static Avx512Vec round(Avx512Vec x) {
    return {_mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  static Avx512Vec floor(Avx512Vec x) {
    return {_mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
  }
  static Avx512Vec pow2(Avx512Vec n) {  // n in [-126, 127] (vexp keeps n there by splitting it)
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
    return {_mm512_castsi512_ps(_mm512_slli_epi32(e, 23))};
  }
};

template <>
struct Avx512Vec<double> {
  using Scalar = double;
  static constexpr int width = 8;
  static constexpr int registers = 32;
  __m512d v;

  static Avx512Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  static Avx512Vec set1(double x) { return {_mm512_set1_pd(x)}; }
  friend Avx512Vec operator+(Avx512Vec a, Avx512Vec b) { return {_mm512_add_pd(a.v, b.v)}; }
  friend Avx512Vec operator-(Avx512Vec a, Avx512Vec b) { return {_mm512_sub_pd(a.v, b.v)}; }
  friend Avx512Vec operator*(Avx512Vec a, Avx512Vec b) { return {_mm512_mul_pd(a.v, b.v)}; }
  friend Avx512Vec operator/(Avx512Vec a, Avx512Vec b) { return {_mm512_div_pd(a.v, b.v)}; }
  static Avx512Vec fmadd(Avx512Vec a, Avx512Vec b, Avx512Vec c) {
    return {_mm512_fmadd_pd(a.v, b.v, c.v)};
  }
  static Avx512Vec clamp(Avx512Vec x, Avx512Vec lo, Avx512Vec hi) {
    return {_mm512_min_pd(hi.v, _mm512_max_pd(lo.v, x.v))};
  }
  static Avx512Vec relu(Avx512Vec x) { return {_mm512_max_pd(_mm512_setzero_pd(), x.v)}; }
  static Avx512Vec where_positive(Avx512Vec h, Avx512Vec g) {
    __mmask8 m = _mm512_cmp_pd_mask(h.v, _mm512_setzero_pd(), _CMP_GT_OQ);
    return {_mm512_maskz_mov_pd(m, g.v)};
  }
  static Avx512Vec round(Avx512Vec x) {
    return {_mm512_roundscale_pd(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  static Avx512Vec floor(Avx512Vec x) {
    return {_mm512_roundscale_pd(x.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
  }
  static Avx512Vec pow2(Avx512Vec n) {  // n in [-1022, 1023]
    __m512i e = _mm512_add_epi64(_mm512_cvtpd_epi64(n.v), _mm512_set1_epi64(1023));
    return {_mm512_castsi512_pd(_mm512_slli_epi64(e, 52))};
  }
};

}  // namespace rnnkit::simd
