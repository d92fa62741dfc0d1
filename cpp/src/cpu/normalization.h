// Batch normalisation over the rows of one step (rnnkit/backend.h NormViews) and its
// backward pass, on rows of F features: the layer norm's equations (kernels.h layer_norm) per
// feature over the n valid rows of the step. The loops run along features, so the compiler
// vectorises them as they are. (A row's layer norm is a kernel of the ISA table: its sums run
// along the row.)
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/simd/kernels.h"

namespace rnnkit::cpu {

// Columns [c0, c0 + F) of the rows of one step in place: a <- BN(a) * gamma over the
// n = rows.size() rows. Keeps xhat (in xhat_rows[k] for rows[k], when not empty) and rstd;
// adds the step's mean and unbiased variance to mean_sum and var_sum when they are not null.
// gamma, rstd, mean_sum and var_sum are indexed by column like the rows; mean: F scratch.
template <typename T>
void batch_norm_forward(const std::vector<T*>& rows, const std::vector<T*>& xhat_rows,
                        int64_t c0, int64_t F, const T* gamma, T* rstd, T* mean, T* mean_sum,
                        T* var_sum) {
  const int64_t n = int64_t(rows.size());
  if (n == 0) return;
  gamma += c0;
  rstd += c0;
  std::fill(mean, mean + F, T(0));
  std::fill(rstd, rstd + F, T(0));  // the variance, until the end
  for (T* a : rows)
    for (int64_t j = 0; j < F; ++j) mean[j] += a[c0 + j];
  for (int64_t j = 0; j < F; ++j) mean[j] /= T(n);
  for (T* a : rows)
    for (int64_t j = 0; j < F; ++j) rstd[j] += (a[c0 + j] - mean[j]) * (a[c0 + j] - mean[j]);
  const T unbias = n > 1 ? T(n) / T(n - 1) : T(1);
  for (int64_t j = 0; j < F; ++j) {
    const T var = rstd[j] / T(n);
    if (mean_sum) mean_sum[c0 + j] += mean[j];
    if (var_sum) var_sum[c0 + j] += var * unbias;
    rstd[j] = T(1) / std::sqrt(var + T(kNormEps));
  }
  for (int64_t k = 0; k < n; ++k) {
    T* a = rows[size_t(k)] + c0;
    T* xhat = xhat_rows.empty() ? nullptr : xhat_rows[size_t(k)] + c0;
    for (int64_t j = 0; j < F; ++j) {
      const T hat = (a[j] - mean[j]) * rstd[j];
      if (xhat) xhat[j] = hat;
      a[j] = hat * gamma[j];
    }
  }
}

// The gradient rows of one step in place, columns [c0, c0 + F) (w.r.t. BN's output -> w.r.t.
// its input). gamma and rstd indexed by column; sums: 2F scratch.
template <typename T>
void batch_norm_backward(const std::vector<T*>& rows, const std::vector<const T*>& xhat_rows,
                         int64_t c0, int64_t F, const T* gamma, const T* rstd, T* sums) {
  const int64_t n = int64_t(rows.size());
  if (n == 0) return;
  gamma += c0;
  rstd += c0;
  T* sum_g = sums;
  T* sum_gx = sums + F;
  std::fill(sums, sums + 2 * F, T(0));
  for (int64_t k = 0; k < n; ++k) {
    const T* d = rows[size_t(k)] + c0;
    const T* xhat = xhat_rows[size_t(k)] + c0;
    for (int64_t j = 0; j < F; ++j) {
      sum_g[j] += d[j] * gamma[j];
      sum_gx[j] += d[j] * gamma[j] * xhat[j];
    }
  }
  for (int64_t k = 0; k < n; ++k) {
    T* d = rows[size_t(k)] + c0;
    const T* xhat = xhat_rows[size_t(k)] + c0;
    for (int64_t j = 0; j < F; ++j)
      d[j] = rstd[j] * (d[j] * gamma[j] - (sum_g[j] + xhat[j] * sum_gx[j]) / T(n));
  }
}

// out[j] (+)= sum over rows of a[r, j] * b[r, j] for the columns j in [c0, c1) of two
// [rows, F] matrices: a gain's gradient, the sum of dout * xhat.
template <typename T>
void add_column_products(const T* a, const T* b, int64_t rows, int64_t F, int64_t c0,
                         int64_t c1, T* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = c0; j < c1; ++j) out[j] += a[r * F + j] * b[r * F + j];
}

}  // namespace rnnkit::cpu
