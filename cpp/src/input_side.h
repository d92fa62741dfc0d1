// Which gradient feeds the input side (dWx, dx, db) of each column block, shared by every
// backend's BPTT: dA's columns, except the block a cell's policy names "separate" (a reset-after
// GRU's n block, whose input-side gradient lacks the factor r), which comes from dax.
#pragma once

#include <cstdint>
#include <vector>

namespace rnnkit {

template <typename T>
struct GradColumns {
  const T* grad;  // first column of the gradient block
  int64_t ld, c0, width;  // its leading dimension; the columns [c0, c0 + width) of Wx it feeds
};

// dA: [rows, G*H]; dax: [rows, H] (read only when separate >= 0).
template <typename T>
std::vector<GradColumns<T>> input_side_columns(const T* dA, const T* dax, int separate,
                                               int64_t H, int64_t GH) {
  if (separate < 0) return {{dA, GH, 0, GH}};
  std::vector<GradColumns<T>> out;
  const int64_t sep0 = separate * H;
  if (sep0 > 0) out.push_back({dA, GH, 0, sep0});
  out.push_back({dax, H, sep0, H});
  if (sep0 + H < GH) out.push_back({dA + sep0 + H, GH, sep0 + H, GH - sep0 - H});
  return out;
}

}  // namespace rnnkit
