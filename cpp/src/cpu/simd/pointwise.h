// Fused pointwise gate kernels, written once over a vector type V (see vec_*.h) and
// instantiated by each ISA translation unit. The bulk of a row runs V::width lanes at a time,
// the remainder one lane at a time with ScalarVec. See kernels.h for the contracts.
#pragma once

#include <cmath>
#include <cstdint>

#include "cpu/simd/kernels.h"
#include "cpu/simd/vec_math.h"
#include "cpu/simd/vec_scalar.h"

namespace rnnkit::simd {

// Calls body(W{}, j) for lanes [j, j + W::width) covering [0, H): W = V in bulk, then ScalarVec.
template <class V, class Body>
inline void for_each_lane(int64_t H, Body&& body) {
  using T = typename V::Scalar;
  int64_t j = 0;
  for (; j + V::width <= H; j += V::width) body(V{}, j);
  for (; j < H; ++j) body(ScalarVec<T>{}, j);
}

// Loads p[j..] or zeros when p is null (optional states).
template <class W, typename T>
inline W load_or_zero(const T* p, int64_t j) {
  return p ? W::load(p + j) : W::set1(T(0));
}

template <class V>
struct Pointwise {
  using T = typename V::Scalar;

  static void rnn_forward(const T* ax, const T* ah, bool relu, T* h, int64_t n) {
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W a = W::load(ax + j) + W::load(ah + j);
      (relu ? W::relu(a) : vtanh(a)).store(h + j);
    });
  }

  static void rnn_backward(const T* h, const T* dh, bool relu, T* da, int64_t n) {
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W hv = W::load(h + j), g = W::load(dh + j);
      const W out = relu ? W::where_positive(hv, g) : g * (W::set1(1) - hv * hv);
      out.store(da + j);
    });
  }

  // Peepholes (peep = p_i, p_f, p_o at stride gs, or null) are a template argument so the
  // plain LSTM's lane loop carries no test for them.
  static void lstm_forward(const T* ax, const T* ah, const T* c_prev, const T* peep,
                           const int* block, T* gates, T* c, T* h, int64_t n, int64_t gs) {
    if (peep) lstm_forward_lanes<true>(ax, ah, c_prev, peep, block, gates, c, h, n, gs);
    else lstm_forward_lanes<false>(ax, ah, c_prev, peep, block, gates, c, h, n, gs);
  }

  template <bool Peep>
  static void lstm_forward_lanes(const T* ax, const T* ah, const T* c_prev, const T* peep,
                                 const int* block, T* gates, T* c, T* h, int64_t n, int64_t gs) {
    const int64_t oi = block[0] * gs, of = block[1] * gs, og = block[2] * gs, oo = block[3] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W cp = load_or_zero<W>(c_prev, j);
      W ai = W::load(ax + oi + j) + W::load(ah + oi + j);
      W af = W::load(ax + of + j) + W::load(ah + of + j);
      W ao = W::load(ax + oo + j) + W::load(ah + oo + j);
      if constexpr (Peep) {
        ai = W::fmadd(W::load(peep + j), cp, ai);
        af = W::fmadd(W::load(peep + gs + j), cp, af);
      }
      const W i = vsigmoid(ai), f = vsigmoid(af);
      const W g = vtanh(W::load(ax + og + j) + W::load(ah + og + j));
      const W cv = W::fmadd(f, cp, i * g);
      if constexpr (Peep) ao = W::fmadd(W::load(peep + 2 * gs + j), cv, ao);
      const W o = vsigmoid(ao);
      if (gates) {
        i.store(gates + oi + j);
        f.store(gates + of + j);
        g.store(gates + og + j);
        o.store(gates + oo + j);
      }
      cv.store(c + j);
      (o * vtanh(cv)).store(h + j);
    });
  }

  static void lstm_backward(const T* gates, const T* c, const T* c_prev, const T* peep,
                            const T* dh, const T* dc, const int* block, T* da, T* dc_prev,
                            int64_t n, int64_t gs) {
    if (peep) lstm_backward_lanes<true>(gates, c, c_prev, peep, dh, dc, block, da, dc_prev, n, gs);
    else lstm_backward_lanes<false>(gates, c, c_prev, peep, dh, dc, block, da, dc_prev, n, gs);
  }

  template <bool Peep>
  static void lstm_backward_lanes(const T* gates, const T* c, const T* c_prev, const T* peep,
                                  const T* dh, const T* dc, const int* block, T* da, T* dc_prev,
                                  int64_t n, int64_t gs) {
    const int64_t oi = block[0] * gs, of = block[1] * gs, og = block[2] * gs, oo = block[3] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W one = W::set1(1);
      const W i = W::load(gates + oi + j), f = W::load(gates + of + j);
      const W g = W::load(gates + og + j), o = W::load(gates + oo + j);
      const W tc = vtanh(W::load(c + j));
      const W dhv = W::load(dh + j);
      const W da_o = dhv * tc * o * (one - o);
      // total gradient reaching c_t: from h_t = o tanh(c_t), from c_{t+1}, and with peepholes
      // from o's pre-activation, which reads c_t
      W dcv = W::fmadd(dhv * o, one - tc * tc, load_or_zero<W>(dc, j));
      if constexpr (Peep) dcv = W::fmadd(da_o, W::load(peep + 2 * gs + j), dcv);
      const W cp = load_or_zero<W>(c_prev, j);
      const W da_i = dcv * g * i * (one - i), da_f = dcv * cp * f * (one - f);
      da_i.store(da + oi + j);
      da_f.store(da + of + j);
      (dcv * i * (one - g * g)).store(da + og + j);
      da_o.store(da + oo + j);
      W dcp = dcv * f;  // i and f read c_{t-1} through their peepholes too
      if constexpr (Peep)
        dcp = W::fmadd(da_f, W::load(peep + gs + j), W::fmadd(da_i, W::load(peep + j), dcp));
      dcp.store(dc_prev + j);
    });
  }

  static void gru_forward(const T* ax, const T* ah, const T* bh_n, const T* h_prev,
                          const int* block, T* gates, T* hn, T* h, int64_t n, int64_t gs) {
    const int64_t orr = block[0] * gs, oz = block[1] * gs, on = block[2] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W r = vsigmoid(W::load(ax + orr + j) + W::load(ah + orr + j));
      const W z = vsigmoid(W::load(ax + oz + j) + W::load(ah + oz + j));
      const W hnv = W::load(ah + on + j) + load_or_zero<W>(bh_n, j);
      const W n = vtanh(W::fmadd(r, hnv, W::load(ax + on + j)));
      const W hp = load_or_zero<W>(h_prev, j);
      if (gates) {
        r.store(gates + orr + j);
        z.store(gates + oz + j);
        n.store(gates + on + j);
        hnv.store(hn + j);
      }
      W::fmadd(z, hp - n, n).store(h + j);  // (1-z) n + z h_prev
    });
  }

  static void gru_backward(const T* gates, const T* hn, const T* h_prev, const T* dh,
                           const int* block, T* dah, T* dax_n, T* dh_prev, int64_t n, int64_t gs) {
    const int64_t orr = block[0] * gs, oz = block[1] * gs, on = block[2] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W one = W::set1(1);
      const W r = W::load(gates + orr + j), z = W::load(gates + oz + j);
      const W n = W::load(gates + on + j), hp = load_or_zero<W>(h_prev, j);
      const W dhv = W::load(dh + j);
      const W dn_pre = dhv * (one - z) * (one - n * n);
      const W dz_pre = dhv * (hp - n) * z * (one - z);
      const W dr_pre = dn_pre * W::load(hn + j) * r * (one - r);
      dn_pre.store(dax_n + j);
      dr_pre.store(dah + orr + j);
      dz_pre.store(dah + oz + j);
      (dn_pre * r).store(dah + on + j);
      (dhv * z).store(dh_prev + j);
    });
  }

  static void gru_forward_rz(const T* ax, const T* ah, const T* h_prev, const int* block,
                             T* gates, T* rh, int64_t n, int64_t gs) {
    const int64_t orr = block[0] * gs, oz = block[1] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W r = vsigmoid(W::load(ax + orr + j) + W::load(ah + orr + j));
      const W z = vsigmoid(W::load(ax + oz + j) + W::load(ah + oz + j));
      r.store(gates + orr + j);
      z.store(gates + oz + j);
      (r * load_or_zero<W>(h_prev, j)).store(rh + j);
    });
  }

  static void gru_forward_n(const T* ax, const T* ah_n, const T* h_prev, const int* block,
                            T* gates, T* h, int64_t n, int64_t gs) {
    const int64_t oz = block[1] * gs, on = block[2] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W n = vtanh(W::load(ax + on + j) + W::load(ah_n + j));
      const W z = W::load(gates + oz + j);
      n.store(gates + on + j);
      W::fmadd(z, load_or_zero<W>(h_prev, j) - n, n).store(h + j);
    });
  }

  static void gru_backward_zn(const T* gates, const T* h_prev, const T* dh, const int* block,
                              T* da, T* dh_prev, int64_t n, int64_t gs) {
    const int64_t oz = block[1] * gs, on = block[2] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W one = W::set1(1);
      const W z = W::load(gates + oz + j), n = W::load(gates + on + j);
      const W hp = load_or_zero<W>(h_prev, j), dhv = W::load(dh + j);
      (dhv * (one - z) * (one - n * n)).store(da + on + j);
      (dhv * (hp - n) * z * (one - z)).store(da + oz + j);
      (dhv * z).store(dh_prev + j);
    });
  }

  static void gru_backward_r(const T* gates, const T* h_prev, const T* d_rh, const int* block,
                             T* da, T* d_hr, int64_t n, int64_t gs) {
    const int64_t orr = block[0] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W r = W::load(gates + orr + j), drh = W::load(d_rh + j);
      (drh * load_or_zero<W>(h_prev, j) * r * (W::set1(1) - r)).store(da + orr + j);
      (drh * r).store(d_hr + j);
    });
  }

  static void exp(const T* x, T* y, int64_t n) {
    for_each_lane<V>(n, [&](auto w, int64_t j) { vexp(decltype(w)::load(x + j)).store(y + j); });
  }
  static void sigmoid(const T* x, T* y, int64_t n) {
    for_each_lane<V>(n, [&](auto w, int64_t j) { vsigmoid(decltype(w)::load(x + j)).store(y + j); });
  }
  static void tanh(const T* x, T* y, int64_t n) {
    for_each_lane<V>(n, [&](auto w, int64_t j) { vtanh(decltype(w)::load(x + j)).store(y + j); });
  }

  // ---- layer norm of one row (kernels.h); sums in V lanes, added up once per row
  static T lane_sum(V v, T tail) {
    T lanes[V::width];
    v.store(lanes);
    for (int w = 0; w < V::width; ++w) tail += lanes[w];
    return tail;
  }
  // sum over j < F of f(W, j) as a W vector, lanes added up at the end
  template <class F>
  static T row_sum(int64_t n, F&& f) {
    V acc = V::set1(T(0));
    T tail = 0;
    int64_t j = 0;
    for (; j + V::width <= n; j += V::width) acc = acc + f(V{}, j);
    for (; j < n; ++j) tail += f(ScalarVec<T>{}, j).v;
    return lane_sum(acc, tail);
  }

  static T layer_norm(T* a, const T* gamma, const T* beta, int64_t F, T* xhat) {
    const T mean = row_sum(F, [&](auto w, int64_t j) { return decltype(w)::load(a + j); }) / T(F);
    const T var = row_sum(F, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W c = W::load(a + j) - W::set1(mean);
      return c * c;
    }) / T(F);
    const T rstd = T(1) / std::sqrt(var + T(kNormEps));
    for_each_lane<V>(F, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W hat = (W::load(a + j) - W::set1(mean)) * W::set1(rstd);
      if (xhat) hat.store(xhat + j);
      const W g = W::load(gamma + j);
      (beta ? W::fmadd(hat, g, W::load(beta + j)) : hat * g).store(a + j);
    });
    return rstd;
  }

  static void layer_norm_backward(T* d, const T* gamma, const T* xhat, T rstd, int64_t F) {
    const T mean_g = row_sum(F, [&](auto w, int64_t j) {
      using W = decltype(w);
      return W::load(d + j) * W::load(gamma + j);
    }) / T(F);
    const T mean_gx = row_sum(F, [&](auto w, int64_t j) {
      using W = decltype(w);
      return W::load(d + j) * W::load(gamma + j) * W::load(xhat + j);
    }) / T(F);
    for_each_lane<V>(F, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W g = W::load(d + j) * W::load(gamma + j);
      (W::set1(rstd) * (g - W::set1(mean_g) - W::load(xhat + j) * W::set1(mean_gx))).store(d + j);
    });
  }

  // ---- packed GEMM over one wide tile: U = pack_vectors() adjacent vectors of one matrix's
  // columns, R rows x U vectors of accumulators in registers. Measured on AVX2 (K = 512):
  // R=4 x U=3 runs at ~95 GFLOP/s per core, R=3 x (4 gate vectors) at ~70 and R=6 x 2 at ~85:
  // each weight vector comes from L2, so fewer vectors per k and more rows per block win
  // until the row broadcasts saturate the load ports.
  static constexpr int pack_vectors() { return V::registers >= 32 ? 4 : 3; }
  static constexpr int rows_per_block() {
    // R*U accumulators, U weight vectors and one broadcast in registers
    constexpr int u = pack_vectors(), r = (V::registers - 1 - u) / u;
    return r < 1 ? 1 : r > 8 ? 8 : r;
  }

  // C[r, u*W + w] (+)= sum_k A[r, k] P[k][u][w] for r < R and u*W + w < n_valid.
  // With few rows (small batches) R*U accumulator chains cannot hide the FMA latency, so k is
  // split into KS interleaved phases with their own accumulators, summed at the end
  // (R=1: 12 chains instead of 3; measured 1.06-1.1x faster at batch 1, neutral at larger ones).
  // (U is a parameter only for bench/tile_sweep.cpp, which times other tile shapes.)
  template <int R, int U = pack_vectors()>
  static void tile_block(const T* A, int64_t lda, int64_t K, const T* P, T* C, int64_t ldc,
                         int64_t n_valid, bool accumulate) {
    constexpr int W = V::width;
    constexpr int KS = 12 / (R * U) < 1 ? 1 : 12 / (R * U) > 4 ? 4 : 12 / (R * U);
    V sum[KS][R][U];  // (the unroll counts cover every shape bench/tile_sweep.cpp times)
#pragma GCC unroll 4
    for (int p = 0; p < KS; ++p)
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int u = 0; u < U; ++u) sum[p][r][u] = V::set1(T(0));
    auto step = [&](int p, int64_t k) {
      V w[U];
#pragma GCC unroll 8
      for (int u = 0; u < U; ++u) w[u] = V::load(P + (k * U + u) * W);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const V a = V::set1(A[r * lda + k]);
#pragma GCC unroll 8
        for (int u = 0; u < U; ++u) sum[p][r][u] = V::fmadd(a, w[u], sum[p][r][u]);
      }
    };
    int64_t k = 0;
    for (; k + KS <= K; k += KS)
#pragma GCC unroll 4
      for (int p = 0; p < KS; ++p) step(p, k + p);
    for (; k < K; ++k) step(0, k);
#pragma GCC unroll 4
    for (int p = 1; p < KS; ++p)
      for (int r = 0; r < R; ++r)
        for (int u = 0; u < U; ++u) sum[0][r][u] = sum[0][r][u] + sum[p][r][u];
    for (int r = 0; r < R; ++r)
      for (int u = 0; u < U; ++u) {
        T* c = C + r * ldc + u * W;
        const int64_t valid = n_valid - u * W;
        if (valid >= W) {
          (accumulate ? sum[0][r][u] + V::load(c) : sum[0][r][u]).store(c);
        } else if (valid > 0) {
          T tmp[W];
          sum[0][r][u].store(tmp);
          for (int64_t w = 0; w < valid; ++w) c[w] = accumulate ? c[w] + tmp[w] : tmp[w];
        }
      }
  }

  // a block of exactly `rows` (<= R) rows
  template <int R>
  static void block_of(int64_t rows, const T* A, int64_t lda, int64_t K, const T* P, T* C,
                       int64_t ldc, int64_t n_valid, bool accumulate) {
    if constexpr (R >= 1) {
      if (rows == R) tile_block<R>(A, lda, K, P, C, ldc, n_valid, accumulate);
      else block_of<R - 1>(rows, A, lda, K, P, C, ldc, n_valid, accumulate);
    }
  }

  // All M rows, split evenly into blocks (sizes differ by at most one, so no block is a slow
  // sliver: 10 rows run as 3+3+4, not 4+4+2).
  static void packed_gemm(const T* A, int64_t lda, int64_t M, int64_t K, const T* P,
                          int64_t n_valid, T* C, int64_t ldc, bool accumulate) {
    constexpr int RB = rows_per_block();
    const int64_t blocks = (M + RB - 1) / RB;
    for (int64_t blk = 0, r = 0; blk < blocks; ++blk) {
      const int64_t rows = (M - r) / (blocks - blk);
      block_of<RB>(rows, A + r * lda, lda, K, P, C + r * ldc, ldc, n_valid, accumulate);
      r += rows;
    }
  }

  static T fma_loop(int64_t rounds) {
    V acc[kFmaProbeChains];
    for (int i = 0; i < kFmaProbeChains; ++i) acc[i] = V::set1(T(i + 1) * T(1e-3));
    // a < 1 and b > 0: every chain converges to b / (1 - a) instead of overflowing
    const V a = V::set1(T(0.999)), b = V::set1(T(1e-4));
    for (int64_t r = 0; r < rounds; ++r)
      for (int i = 0; i < kFmaProbeChains; ++i) acc[i] = V::fmadd(acc[i], a, b);
    T lanes[V::width], sum = 0;
    for (int i = 0; i < kFmaProbeChains; ++i) {
      acc[i].store(lanes);
      for (int w = 0; w < V::width; ++w) sum += lanes[w];
    }
    return sum;
  }

  static void fill(PointwiseKernels<T>& k) {
    k.pack_width = V::width;
    k.pack_vectors = pack_vectors();
    k.packed_gemm = packed_gemm;
    k.rnn_forward = rnn_forward;
    k.rnn_backward = rnn_backward;
    k.lstm_forward = lstm_forward;
    k.lstm_backward = lstm_backward;
    k.gru_forward = gru_forward;
    k.gru_backward = gru_backward;
    k.gru_forward_rz = gru_forward_rz;
    k.gru_forward_n = gru_forward_n;
    k.gru_backward_zn = gru_backward_zn;
    k.gru_backward_r = gru_backward_r;
    k.fma_loop = fma_loop;
    k.layer_norm = layer_norm;
    k.layer_norm_backward = layer_norm_backward;
    k.exp = exp;
    k.sigmoid = sigmoid;
    k.tanh = tanh;
  }
};

}  // namespace rnnkit::simd
