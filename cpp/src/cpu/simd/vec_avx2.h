// AVX2 + FMA vector types. Include only from a translation unit built with -mavx2 -mfma.
#pragma once

#include <immintrin.h>

namespace rnnkit::simd {

template <typename T>
struct Avx2Vec;

template <>
struct Avx2Vec<float> {
  using Scalar = float;
  static constexpr int width = 8;
  static constexpr int registers = 16;
  __m256 v;

  static Avx2Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  static Avx2Vec set1(float x) { return {_mm256_set1_ps(x)}; }
  friend Avx2Vec operator+(Avx2Vec a, Avx2Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
  friend Avx2Vec operator-(Avx2Vec a, Avx2Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
  friend Avx2Vec operator*(Avx2Vec a, Avx2Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
  friend Avx2Vec operator/(Avx2Vec a, Avx2Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
  static Avx2Vec fmadd(Avx2Vec a, Avx2Vec b, Avx2Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
  // max/min return their second operand when either is NaN: x goes second so NaN survives.
  static Avx2Vec clamp(Avx2Vec x, Avx2Vec lo, Avx2Vec hi) {
    return {_mm256_min_ps(hi.v, _mm256_max_ps(lo.v, x.v))};
  }
  static Avx2Vec relu(Avx2Vec x) { return {_mm256_max_ps(_mm256_setzero_ps(), x.v)}; }
  static Avx2Vec where_positive(Avx2Vec h, Avx2Vec g) {
    return {_mm256_and_ps(_mm256_cmp_ps(h.v, _mm256_setzero_ps(), _CMP_GT_OQ), g.v)};
  }
  static Avx2Vec round(Avx2Vec x) {
    return {_mm256_round_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  static Avx2Vec floor(Avx2Vec x) {
    return {_mm256_round_ps(x.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
  }
  // 2^n for integral n in [-126, 127] (vexp keeps n there by splitting it)
  static Avx2Vec pow2(Avx2Vec n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
  }
};

template <>
struct Avx2Vec<double> {
  using Scalar = double;
  static constexpr int width = 4;
  static constexpr int registers = 16;
  __m256d v;

  static Avx2Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  static Avx2Vec set1(double x) { return {_mm256_set1_pd(x)}; }
  friend Avx2Vec operator+(Avx2Vec a, Avx2Vec b) { return {_mm256_add_pd(a.v, b.v)}; }
  friend Avx2Vec operator-(Avx2Vec a, Avx2Vec b) { return {_mm256_sub_pd(a.v, b.v)}; }
  friend Avx2Vec operator*(Avx2Vec a, Avx2Vec b) { return {_mm256_mul_pd(a.v, b.v)}; }
  friend Avx2Vec operator/(Avx2Vec a, Avx2Vec b) { return {_mm256_div_pd(a.v, b.v)}; }
  static Avx2Vec fmadd(Avx2Vec a, Avx2Vec b, Avx2Vec c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
  static Avx2Vec clamp(Avx2Vec x, Avx2Vec lo, Avx2Vec hi) {
    return {_mm256_min_pd(hi.v, _mm256_max_pd(lo.v, x.v))};
  }
  static Avx2Vec relu(Avx2Vec x) { return {_mm256_max_pd(_mm256_setzero_pd(), x.v)}; }
  static Avx2Vec where_positive(Avx2Vec h, Avx2Vec g) {
    return {_mm256_and_pd(_mm256_cmp_pd(h.v, _mm256_setzero_pd(), _CMP_GT_OQ), g.v)};
  }
  static Avx2Vec round(Avx2Vec x) {
    return {_mm256_round_pd(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
  }
  static Avx2Vec floor(Avx2Vec x) {
    return {_mm256_round_pd(x.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
  }
  // 2^n for integral n in [-1022, 1023]. AVX2 has no double->int64 conversion: adding
  // 1.5 * 2^52 puts n in the low mantissa bits, from where it is moved to the exponent.
  static Avx2Vec pow2(Avx2Vec n) {
    const __m256d magic = _mm256_set1_pd(6755399441055744.0);  // 1.5 * 2^52
    __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n.v, magic));
    bits = _mm256_sub_epi64(bits, _mm256_castpd_si256(magic));
    bits = _mm256_add_epi64(bits, _mm256_set1_epi64x(1023));
    return {_mm256_castsi256_pd(_mm256_slli_epi64(bits, 52))};
  }
};

}  // namespace rnnkit::simd
