// Fused pointwise gate kernels, written once over a vector type V (see vec_*.h) and
// instantiated by each ISA translation unit. The bulk of a row runs V::width lanes at a time,
// the remainder one lane at a time with ScalarVec. See kernels.h for the contracts.
#pragma once

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

  static void lstm_forward(const T* ax, const T* ah, const T* c_prev, const int* block, T* gates,
                           T* c, T* h, int64_t n, int64_t gs) {
    const int64_t oi = block[0] * gs, of = block[1] * gs, og = block[2] * gs, oo = block[3] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W i = vsigmoid(W::load(ax + oi + j) + W::load(ah + oi + j));
      const W f = vsigmoid(W::load(ax + of + j) + W::load(ah + of + j));
      const W g = vtanh(W::load(ax + og + j) + W::load(ah + og + j));
      const W o = vsigmoid(W::load(ax + oo + j) + W::load(ah + oo + j));
      const W cv = W::fmadd(f, load_or_zero<W>(c_prev, j), i * g);
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

  static void lstm_backward(const T* gates, const T* c, const T* c_prev, const T* dh,
                            const T* dc, const int* block, T* da, T* dc_prev, int64_t n, int64_t gs) {
    const int64_t oi = block[0] * gs, of = block[1] * gs, og = block[2] * gs, oo = block[3] * gs;
    for_each_lane<V>(n, [&](auto w, int64_t j) {
      using W = decltype(w);
      const W one = W::set1(1);
      const W i = W::load(gates + oi + j), f = W::load(gates + of + j);
      const W g = W::load(gates + og + j), o = W::load(gates + oo + j);
      const W tc = vtanh(W::load(c + j));
      const W dhv = W::load(dh + j);
      // total gradient reaching c_t: from h_t = o tanh(c_t) and from c_{t+1}
      const W dcv = W::fmadd(dhv * o, one - tc * tc, load_or_zero<W>(dc, j));
      const W di = dcv * g, df = dcv * load_or_zero<W>(c_prev, j), dg = dcv * i, dov = dhv * tc;
      (di * i * (one - i)).store(da + oi + j);
      (df * f * (one - f)).store(da + of + j);
      (dg * (one - g * g)).store(da + og + j);
      (dov * o * (one - o)).store(da + oo + j);
      (dcv * f).store(dc_prev + j);
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

  // ---- packed recurrent GEMM: R rows x G groups x one vector of accumulators in registers
  template <int G>
  static constexpr int rows_per_block() {
    // R*G accumulators plus a broadcast and a spare; weights are FMA memory operands
    constexpr int r = (V::registers - 2) / G;
    return r < 1 ? 1 : r > 8 ? 8 : r;
  }

  template <int R, int G>
  static void tile_block(const T* A, int64_t lda, int64_t K, const T* P, T* C, int64_t ldc,
                         const int64_t* col, int64_t n_valid, bool accumulate) {
    constexpr int W = V::width;
    V sum[R][G];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) sum[r][g] = V::set1(T(0));
    for (int64_t k = 0; k < K; ++k) {
      V w[G];
#pragma GCC unroll 4
      for (int g = 0; g < G; ++g) w[g] = V::load(P + (k * G + g) * W);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const V a = V::set1(A[r * lda + k]);
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g) sum[r][g] = V::fmadd(a, w[g], sum[r][g]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int g = 0; g < G; ++g) {
        T* c = C + r * ldc + col[g];
        if (n_valid == W) {
          (accumulate ? sum[r][g] + V::load(c) : sum[r][g]).store(c);
        } else {
          T tmp[W];
          sum[r][g].store(tmp);
          for (int64_t w = 0; w < n_valid; ++w) c[w] = accumulate ? c[w] + tmp[w] : tmp[w];
        }
      }
  }

  // the M % rows_per_block leftover rows, with a block of exactly that many rows
  template <int R, int G>
  static void tail_rows(int64_t rows, const T* A, int64_t lda, int64_t K, const T* P, T* C,
                        int64_t ldc, const int64_t* col, int64_t n_valid, bool accumulate) {
    if constexpr (R >= 1) {
      if (rows == R) tile_block<R, G>(A, lda, K, P, C, ldc, col, n_valid, accumulate);
      else tail_rows<R - 1, G>(rows, A, lda, K, P, C, ldc, col, n_valid, accumulate);
    }
  }

  template <int G>
  static void gemm_rows(const T* A, int64_t lda, int64_t M, int64_t K, const T* P, T* C,
                        int64_t ldc, const int64_t* col, int64_t n_valid, bool accumulate) {
    constexpr int RB = rows_per_block<G>();
    int64_t r = 0;
    for (; r + RB <= M; r += RB)
      tile_block<RB, G>(A + r * lda, lda, K, P, C + r * ldc, ldc, col, n_valid, accumulate);
    if (r < M)
      tail_rows<RB - 1, G>(M - r, A + r * lda, lda, K, P, C + r * ldc, ldc, col, n_valid, accumulate);
  }

  static void packed_gemm(const T* A, int64_t lda, int64_t M, int64_t K, const T* P, int G,
                          int64_t n_valid, T* C, int64_t ldc, const int64_t* col, bool accumulate) {
    switch (G) {
      case 1: return gemm_rows<1>(A, lda, M, K, P, C, ldc, col, n_valid, accumulate);
      case 2: return gemm_rows<2>(A, lda, M, K, P, C, ldc, col, n_valid, accumulate);
      case 3: return gemm_rows<3>(A, lda, M, K, P, C, ldc, col, n_valid, accumulate);
      default: return gemm_rows<4>(A, lda, M, K, P, C, ldc, col, n_valid, accumulate);
    }
  }

  static void fill(PointwiseKernels<T>& k) {
    k.pack_width = V::width;
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
    k.exp = exp;
    k.sigmoid = sigmoid;
    k.tanh = tanh;
  }
};

}  // namespace rnnkit::simd
