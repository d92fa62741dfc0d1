// The normalisations of a normalised recurrence (rnnkit/backend.h NormViews) and their
// backward passes, on rows of F features. O(F) per row against the O(S*F) recurrent product
// of the same row, so plain loops (the compiler vectorises them) are enough.
//
// Layer norm, per row a: xhat = (a - mean(a)) * rstd, rstd = 1 / sqrt(var(a) + eps), out =
// xhat * gamma; backward: da = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * gamma.
// Batch norm: the same per feature over n rows (the valid rows of one step), means over n.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace rnnkit::cpu {

constexpr double kNormEps = 1e-5;

// a (F) in place: a <- LN(a) * gamma (+ beta when not null). Keeps xhat (when not null) and
// returns rstd.
template <typename T>
T layer_norm_forward(T* a, const T* gamma, const T* beta, int64_t F, T* xhat) {
  T mean = 0, var = 0;
  for (int64_t j = 0; j < F; ++j) mean += a[j];
  mean /= T(F);
  for (int64_t j = 0; j < F; ++j) var += (a[j] - mean) * (a[j] - mean);
  const T rstd = T(1) / std::sqrt(var / T(F) + T(kNormEps));
  for (int64_t j = 0; j < F; ++j) {
    const T hat = (a[j] - mean) * rstd;
    if (xhat) xhat[j] = hat;
    a[j] = beta ? hat * gamma[j] + beta[j] : hat * gamma[j];
  }
  return rstd;
}

// d (F) in place: the gradient w.r.t. LN's output becomes the one w.r.t. its input.
template <typename T>
void layer_norm_backward(T* d, const T* gamma, const T* xhat, T rstd, int64_t F) {
  T mean_g = 0, mean_gx = 0;
  for (int64_t j = 0; j < F; ++j) {
    mean_g += d[j] * gamma[j];
    mean_gx += d[j] * gamma[j] * xhat[j];
  }
  mean_g /= T(F);
  mean_gx /= T(F);
  for (int64_t j = 0; j < F; ++j) d[j] = rstd * (d[j] * gamma[j] - mean_g - xhat[j] * mean_gx);
}

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
