// One-lane "vector" over the C++ standard library maths: the portable path, the oracle the
// vectorised ISAs are tested against, and the tail loop of every vector kernel.
#pragma once

#include <cmath>

namespace rnnkit::simd {

template <typename T>
struct ScalarVec {
  using Scalar = T;
  static constexpr int width = 1;
  static constexpr int registers = 16;
  T v;

  static ScalarVec load(const T* p) { return {*p}; }
  void store(T* p) const { *p = v; }
  static ScalarVec set1(T x) { return {x}; }
  friend ScalarVec operator+(ScalarVec a, ScalarVec b) { return {a.v + b.v}; }
  friend ScalarVec operator-(ScalarVec a, ScalarVec b) { return {a.v - b.v}; }
  friend ScalarVec operator*(ScalarVec a, ScalarVec b) { return {a.v * b.v}; }
  friend ScalarVec operator/(ScalarVec a, ScalarVec b) { return {a.v / b.v}; }
  static ScalarVec fmadd(ScalarVec a, ScalarVec b, ScalarVec c) { return {a.v * b.v + c.v}; }
  // relu that lets NaN through (a NaN input must never turn into a clean 0)
  static ScalarVec relu(ScalarVec x) { return {(x.v > T(0) || x.v != x.v) ? x.v : T(0)}; }
  // h > 0 ? g : 0
  static ScalarVec where_positive(ScalarVec h, ScalarVec g) { return {h.v > T(0) ? g.v : T(0)}; }
};

template <typename T>
inline ScalarVec<T> vexp(ScalarVec<T> x) { return {std::exp(x.v)}; }
template <typename T>
inline ScalarVec<T> vtanh(ScalarVec<T> x) { return {std::tanh(x.v)}; }
template <typename T>
inline ScalarVec<T> vsigmoid(ScalarVec<T> x) { return {T(1) / (T(1) + std::exp(-x.v))}; }

}  // namespace rnnkit::simd
