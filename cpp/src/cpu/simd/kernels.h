// The table of fused pointwise kernels one ISA provides. Only plain pointers and sizes cross
// between the ISA translation units and the rest of the core, never SIMD types.
//
// Every kernel works on n consecutive hidden units of one batch row (a whole row, n = H, or one
// tile of it; per-unit pointers then point at the tile's first unit). `block[k]` is the column
// block that holds canonical gate k (LSTM i,f,g,o; GRU r,z,n): gate k of a gate-wide row
// starts at row + block[k]*gs, with gs = H the gate stride. Outputs may alias inputs of the same gate block (in-place is allowed
// where a comment says so); all outputs are assigned, none accumulated, unless stated.
#pragma once

#include <cstdint>

#include "rnnkit/runtime.h"

namespace rnnkit {

// Independent FMA chains of the peak probe: enough to cover the FMA latency times the FMA
// ports of current x86 cores (4-5 cycles x 2 ports), few enough to stay in 16 registers.
constexpr int kFmaProbeChains = 12;

// The epsilon of every normalisation (rnnkit/backend.h NormViews): var + eps under the root.
constexpr double kNormEps = 1e-5;

template <typename T>
struct PointwiseKernels {
  // h = phi(ax + ah); phi = relu if relu else tanh. ax, ah: [H].
  void (*rnn_forward)(const T* ax, const T* ah, bool relu, T* h, int64_t n);
  // da = dh * phi'(.) evaluated from the output h.
  void (*rnn_backward)(const T* h, const T* dh, bool relu, T* da, int64_t n);

  // ax, ah: [4H] pre-activations (input part with biases, recurrent part). c_prev: [H] or null.
  // peep: null, or the peephole weights p_i, p_f, p_o at peep, peep + gs, peep + 2*gs.
  // gates: [4H] activated i,f,g,o (may be null in inference; may alias ax). c, h: [H].
  void (*lstm_forward)(const T* ax, const T* ah, const T* c_prev, const T* peep,
                       const int* block, T* gates, T* c, T* h, int64_t n, int64_t gs);
  // gates, c, c_prev (null = zeros), peep: as in forward; dh, dc: [H] gradients w.r.t. h_t and
  // c_t (dc may be null). Writes da [4H] (pre-activation gradients) and dc_prev [H]; dc_prev
  // may alias dc.
  void (*lstm_backward)(const T* gates, const T* c, const T* c_prev, const T* peep,
                        const T* dh, const T* dc, const int* block, T* da, T* dc_prev,
                        int64_t n, int64_t gs);

  // GRU, reset after the recurrent product. ax: [3H] (r,z blocks include b+bh, n block only b);
  // ah: [3H] = h_prev @ Wh; bh_n: [H] or null; h_prev: [H] or null (zeros).
  // gates: [3H] activated r,z,n (null in inference; may alias ax); hn: [H] = ah_n + bh_n
  // (null in inference); h: [H].
  void (*gru_forward)(const T* ax, const T* ah, const T* bh_n, const T* h_prev, const int* block,
                      T* gates, T* hn, T* h, int64_t n, int64_t gs);
  // Writes dah [3H] (gradient w.r.t. ah + bh, equal to the one w.r.t. ax in the r,z blocks),
  // dax_n [H] (w.r.t. ax's n block) and dh_prev = dh * z (the direct path h_prev -> h).
  void (*gru_backward)(const T* gates, const T* hn, const T* h_prev, const T* dh,
                       const int* block, T* dah, T* dax_n, T* dh_prev, int64_t n, int64_t gs);

  // GRU, reset before the recurrent product, stage 1: r and z from ax + ah (ah holds the
  // r,z blocks of h_prev @ Wh); writes their activations into gates and rh = r * h_prev.
  void (*gru_forward_rz)(const T* ax, const T* ah, const T* h_prev, const int* block, T* gates,
                         T* rh, int64_t n, int64_t gs);
  // Stage 2: n = tanh(ax_n + ah_n) with ah_n = (r*h_prev) @ Wh_n: [H]; h = (1-z) n + z h_prev.
  // Reads z from gates, writes n into gates.
  void (*gru_forward_n)(const T* ax, const T* ah_n, const T* h_prev, const int* block, T* gates,
                        T* h, int64_t n, int64_t gs);
  // Backward stage 1: da's z and n blocks, dh_prev = dh * z.
  void (*gru_backward_zn)(const T* gates, const T* h_prev, const T* dh, const int* block, T* da,
                          T* dh_prev, int64_t n, int64_t gs);
  // Backward stage 2, given d_rh = da_n @ Wh_n^T: da's r block; d_hr = d_rh * r, the gradient
  // w.r.t. the recurrent input h_prev (here the masked one when recurrent dropout is on).
  void (*gru_backward_r)(const T* gates, const T* h_prev, const T* d_rh, const int* block, T* da,
                         T* d_hr, int64_t n, int64_t gs);

  // GEMM over weights packed once per call (pack_wide in recurrent.cpp) in wide tiles of
  // pack_vectors vectors of pack_width columns. For one tile P: [K][pack_vectors][pack_width],
  // C[r, c] (+)= sum_k A[r, k] P[k][c / pack_width][c % pack_width] for r < M, c < n_valid
  // (<= pack_vectors * pack_width). A: [M, K] with leading dimension lda; C with ldc.
  int pack_width;
  int pack_vectors;
  int64_t tile_span() const { return int64_t(pack_vectors) * pack_width; }  // columns per tile
  void (*packed_gemm)(const T* A, int64_t lda, int64_t M, int64_t K, const T* P, int64_t n_valid,
                      T* C, int64_t ldc, bool accumulate);

  // Layer norm of one row a [F] in place: a <- (a - mean) * rstd * gamma (+ beta when not null),
  // rstd = 1 / sqrt(var + kNormEps), biased variance. Keeps xhat = (a - mean) * rstd when
  // xhat is not null; returns rstd.
  T (*layer_norm)(T* a, const T* gamma, const T* beta, int64_t F, T* xhat);
  // Its backward, d [F] in place from the gradient w.r.t. the output to the one w.r.t. a:
  // d <- rstd * (g - mean(g) - xhat * mean(g * xhat)), g = d * gamma.
  void (*layer_norm_backward)(T* d, const T* gamma, const T* xhat, T rstd, int64_t F);

  // The FMA-peak probe: kFmaProbeChains independent vector accumulators, each updated by one
  // FMA per round, `rounds` rounds, all in registers (no loads or stores in the loop). Returns
  // a value that depends on every accumulator, so the loop is not optimised away.
  T (*fma_loop)(int64_t rounds);

  // Elementwise maths, exposed for tests of the vectorised approximations.
  void (*exp)(const T* x, T* y, int64_t n);
  void (*sigmoid)(const T* x, T* y, int64_t n);
  void (*tanh)(const T* x, T* y, int64_t n);
};

// Filled by the ISA translation units (scalar.cpp, avx2.cpp, avx512.cpp).
void fill_scalar_kernels(PointwiseKernels<float>& f, PointwiseKernels<double>& d);
void fill_avx2_kernels(PointwiseKernels<float>& f, PointwiseKernels<double>& d);
void fill_avx512_kernels(PointwiseKernels<float>& f, PointwiseKernels<double>& d);

// The table of the active ISA (dispatch.cpp).
template <typename T>
const PointwiseKernels<T>& kernels();
// The table of a given ISA, for tests comparing ISAs. Falls back to scalar when unsupported.
template <typename T>
const PointwiseKernels<T>& kernels_for(Isa isa);

}  // namespace rnnkit
