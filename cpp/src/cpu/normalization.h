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

// The rows (F wide) of one step in place: a <- BN(a) * gamma over the n = rows.size() rows.
// Keeps xhat (xhat_rows[k] for rows[k], when not empty) and rstd (F); adds the step's mean and
// unbiased variance to stats_sum[0..F) and [F..2F) when stats_sum is not null.
template <typename T>
void batch_norm_forward(const std::vector<T*>& rows, const T* gamma, int64_t F,
                        const std::vector<T*>& xhat_rows, T* rstd, T* mean, T* stats_sum) {
  const int64_t n = int64_t(rows.size());
  if (n == 0) return;
  std::fill(mean, mean + F, T(0));
  std::fill(rstd, rstd + F, T(0));  // the variance, until the end
  for (T* a : rows)
    for (int64_t j = 0; j < F; ++j) mean[j] += a[j];
  for (int64_t j = 0; j < F; ++j) mean[j] /= T(n);
  for (T* a : rows)
    for (int64_t j = 0; j < F; ++j) rstd[j] += (a[j] - mean[j]) * (a[j] - mean[j]);
  const T unbias = n > 1 ? T(n) / T(n - 1) : T(1);
  for (int64_t j = 0; j < F; ++j) {
    const T var = rstd[j] / T(n);
    if (stats_sum) {
      stats_sum[j] += mean[j];
      stats_sum[F + j] += var * unbias;
    }
    rstd[j] = T(1) / std::sqrt(var + T(kNormEps));
  }
  for (int64_t k = 0; k < n; ++k) {
    T* a = rows[size_t(k)];
    T* xhat = xhat_rows.empty() ? nullptr : xhat_rows[size_t(k)];
    for (int64_t j = 0; j < F; ++j) {
      const T hat = (a[j] - mean[j]) * rstd[j];
      if (xhat) xhat[j] = hat;
      a[j] = hat * gamma[j];
    }
  }
}

// The gradient rows of one step in place (w.r.t. BN's output -> w.r.t. its input). sums: 2F
// scratch.
template <typename T>
void batch_norm_backward(const std::vector<T*>& rows, const std::vector<const T*>& xhat_rows,
                         const T* gamma, const T* rstd, int64_t F, T* sums) {
  const int64_t n = int64_t(rows.size());
  if (n == 0) return;
  T* sum_g = sums;
  T* sum_gx = sums + F;
  std::fill(sums, sums + 2 * F, T(0));
  for (int64_t k = 0; k < n; ++k) {
    const T* d = rows[size_t(k)];
    const T* xhat = xhat_rows[size_t(k)];
    for (int64_t j = 0; j < F; ++j) {
      sum_g[j] += d[j] * gamma[j];
      sum_gx[j] += d[j] * gamma[j] * xhat[j];
    }
  }
  for (int64_t k = 0; k < n; ++k) {
    T* d = rows[size_t(k)];
    const T* xhat = xhat_rows[size_t(k)];
    for (int64_t j = 0; j < F; ++j)
      d[j] = rstd[j] * (d[j] * gamma[j] - (sum_g[j] + xhat[j] * sum_gx[j]) / T(n));
  }
}

// out[j] (+)= sum over rows of a[r, j] * b[r, j]: a gain's gradient, sum of dout * xhat.
template <typename T>
void add_column_products(const T* a, const T* b, int64_t rows, int64_t F, T* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < F; ++j) out[j] += a[r * F + j] * b[r * F + j];
}

}  // namespace rnnkit::cpu
