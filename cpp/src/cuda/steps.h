// The element-wise kernels of the CUDA backend's time loop, one functor each: operator()(i)
// computes element i of its index space. backend.cu launches them as one CUDA thread per
// element; the emulated backend (emulation.cpp) calls them in a plain loop, so every index
// computation here (positions for lengths and reverse, gate blocks, masks) is tested on the
// CPU. Buffers: "compact" ones are [B, .] (one row per sequence, the loop's state); the
// reserve's are [T, B, .] indexed by time position (row = position * B + b).
#pragma once

#include <cstdint>

#include "cuda/gate_math.h"

namespace rnnkit::cuda {

// Which rows take part in step s, and at which time position (docs/design.md
// "Variable-length sequences").
struct StepRows {
  const int64_t* lengths;  // [B] in the device's memory, null: every row has length T
  int64_t T, B, s;
  bool reverse;
  RNNKIT_HD int64_t length(int64_t b) const { return lengths ? lengths[b] : T; }
  RNNKIT_HD bool active(int64_t b) const { return s < length(b); }
  RNNKIT_HD int64_t position(int64_t b) const { return reverse ? length(b) - 1 - s : s; }
  RNNKIT_HD int64_t row(int64_t b) const { return position(b) * B + b; }
  // the reserve row of step s - 1 (s > 0)
  RNNKIT_HD int64_t prev_row(int64_t b) const {
    return (reverse ? length(b) - s : s - 1) * B + b;
  }
};

struct Blocks {
  int k[4];  // column block of each canonical gate
};

// ---- helpers

template <typename T>
struct ZeroMatrix {  // C[r, c] = 0 for a [rows, cols] matrix with leading dimension ld
  T* C;
  int64_t cols, ld;
  RNNKIT_HD void operator()(int64_t i) const { C[(i / cols) * ld + i % cols] = T(0); }
};

template <typename T>
struct Fill {
  T* a;
  T value;
  RNNKIT_HD void operator()(int64_t i) const { a[i] = value; }
};

// out[r, k] = in[r, k] * mask[r % B, k] over [rows, S]: the masked state entering the product
template <typename T>
struct MaskRows {
  const T* in;
  const T* mask;
  T* out;
  int64_t B, S;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t r = i / S, k = i % S;
    out[i] = in[i] * mask[(r % B) * S + k];
  }
};

// xw[row, c] = b[c] + bh[c], except the block whose bh the cell's kernel applies itself
template <typename T>
struct BiasRows {
  T* xw;
  const T* b;
  const T* bh;
  int64_t GH, H;
  int unfolded;  // -1: none
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t c = i % GH;
    xw[i] = b[c] + ((bh && c / H != unfolded) ? bh[c] : T(0));
  }
};

// Where a step's new state goes: the compact state, the output y and (training) the reserve.
template <typename T>
struct StateOut {
  T* h;       // [B, S] compact state
  T* y;       // [T, B, S]
  T* states;  // [T, B, S] reserve copy of y, or null
  int64_t S;
  RNNKIT_HD void put(int64_t b, int64_t row, int64_t k, T v) const {
    h[b * S + k] = v;
    y[row * S + k] = v;
    if (states) states[row * S + k] = v;
  }
};

// ---- forward, one element per (b, j) of [B, H]

template <typename T>
struct RnnForward {
  StepRows rows;
  T* xw;        // [T, B, H] input projection
  const T* hw;  // [B, H] h_{t-1} @ Wh
  StateOut<T> out;
  int64_t H;
  bool is_relu;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H;
    if (!rows.active(b)) return;
    const int64_t row = rows.row(b);
    out.put(b, row, j, rnn_forward(xw[row * H + j] + hw[b * H + j], is_relu));
  }
};

template <typename T>
struct LstmForward {
  StepRows rows;
  T* xw;           // [T, B, 4H]; the activated gates replace the pre-activations
  const T* hw;     // [B, 4H]
  T* c;            // [B, H] compact cell state, updated in place
  T* cells;        // [T, B, H] reserve, or null
  const T* peep;   // [3, H] or null
  Blocks blk;
  StateOut<T> out;        // without a projection
  T* m;                   // [B, H] with a projection: the cell's output, projected later
  T* unprojected;         // [T, B, H] reserve of m, or null
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H;
    if (!rows.active(b)) return;
    const int64_t row = rows.row(b), GH = 4 * H;
    T* a = xw + row * GH;
    const T* ah = hw + b * GH;
    const int64_t oi = blk.k[0] * H + j, of = blk.k[1] * H + j, og = blk.k[2] * H + j,
                  oo = blk.k[3] * H + j;
    const bool p = peep != nullptr;
    const LstmUnit<T> u = lstm_forward(a[oi] + ah[oi], a[of] + ah[of], a[og] + ah[og],
                                       a[oo] + ah[oo], c[b * H + j], p, p ? peep[j] : T(0),
                                       p ? peep[H + j] : T(0), p ? peep[2 * H + j] : T(0));
    a[oi] = u.i;
    a[of] = u.f;
    a[og] = u.g;
    a[oo] = u.o;
    c[b * H + j] = u.c;
    if (cells) cells[row * H + j] = u.c;
    if (m) {
      m[b * H + j] = u.h;
      if (unprojected) unprojected[row * H + j] = u.h;
    } else {
      out.put(b, row, j, u.h);
    }
  }
};

// with a projection, after hp = m @ Wr: element (b, k) of [B, S]
template <typename T>
struct ProjectedOut {
  StepRows rows;
  const T* hp;  // [B, S]
  StateOut<T> out;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / out.S, k = i % out.S;
    if (rows.active(b)) out.put(b, rows.row(b), k, hp[i]);
  }
};

template <typename T>
struct GruForward {  // reset after
  StepRows rows;
  T* xw;            // [T, B, 3H]
  const T* hw;      // [B, 3H]
  const T* bh_n;    // [H] or null
  T* extra;         // [T, B, H] reserve of h @ Wh_n + bh_n, or null
  Blocks blk;
  StateOut<T> out;  // out.h is also h_{t-1} (read, then replaced, by the same element)
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H;
    if (!rows.active(b)) return;
    const int64_t row = rows.row(b), GH = 3 * H;
    T* a = xw + row * GH;
    const T* ah = hw + b * GH;
    const int64_t orr = blk.k[0] * H + j, oz = blk.k[1] * H + j, on = blk.k[2] * H + j;
    const GruUnit<T> u = gru_forward(a[orr] + ah[orr], a[oz] + ah[oz], a[on], ah[on],
                                     bh_n ? bh_n[j] : T(0), out.h[b * H + j]);
    a[orr] = u.r;
    a[oz] = u.z;
    a[on] = u.n;
    if (extra) extra[row * H + j] = u.hn;
    out.put(b, row, j, u.h);
  }
};

template <typename T>
struct GruForwardRz {  // reset before, stage 1
  StepRows rows;
  T* xw;
  const T* hw;    // [B, 3H]: the r and z blocks are filled
  const T* h_in;  // [B, H] h_{t-1} as it entered the product (masked)
  T* rh;          // [B, H] r * h_in, the stage-2 product's input
  T* extra;       // [T, B, H] reserve of rh, or null
  Blocks blk;
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H;
    if (!rows.active(b)) {
      rh[i] = T(0);  // keeps the stage-2 product of an idle row finite
      return;
    }
    const int64_t row = rows.row(b), GH = 3 * H;
    T* a = xw + row * GH;
    const T* ah = hw + b * GH;
    const int64_t orr = blk.k[0] * H + j, oz = blk.k[1] * H + j;
    const GruRz<T> u = gru_forward_rz(a[orr] + ah[orr], a[oz] + ah[oz], h_in[i]);
    a[orr] = u.r;
    a[oz] = u.z;
    rh[i] = u.rh;
    if (extra) extra[row * H + j] = u.rh;
  }
};

template <typename T>
struct GruForwardN {  // reset before, stage 2
  StepRows rows;
  T* xw;
  const T* hw;  // [B, 3H]: the n block holds (r h_in) @ Wh_n
  Blocks blk;
  StateOut<T> out;
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H;
    if (!rows.active(b)) return;
    const int64_t row = rows.row(b), GH = 3 * H;
    T* a = xw + row * GH;
    const int64_t oz = blk.k[1] * H + j, on = blk.k[2] * H + j;
    const GruN<T> u = gru_forward_n(a[on], hw[b * GH + on], a[oz], out.h[b * H + j]);
    a[on] = u.n;
    out.put(b, row, j, u.h);
  }
};

// ---- backward

// element (b, k) of [B, S]: h_{t-1} of the step's position (kept for dWh), and the gradient
// reaching h_t: the one from step t+1 plus dy_t
template <typename T>
struct GatherStep {
  StepRows rows;
  const T* states;  // [T, B, S] reserve
  const T* h0;      // [B, S] or null
  const T* dy;      // [T, B, S] or null
  const T* dh;      // [B, S] from step t+1
  T* h_prev_all;    // [T, B, S]
  T* dh_total;      // [B, S]
  T* dh_all;        // [T, B, S] with a projection (for dWr), else null
  int64_t S;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / S, k = i % S;
    if (!rows.active(b)) return;
    const int64_t row = rows.row(b);
    h_prev_all[row * S + k] =
        rows.s == 0 ? (h0 ? h0[i] : T(0)) : states[rows.prev_row(b) * S + k];
    const T d = dh[i] + (dy ? dy[row * S + k] : T(0));
    dh_total[i] = d;
    if (dh_all) dh_all[row * S + k] = d;
  }
};

// Gate gradients are written twice: by position into dA (for the weight GEMMs after the
// loop) and compactly into dA_step (for this step's product with Wh^T), which is zero for
// idle rows.
template <typename T>
struct RnnBackward {
  StepRows rows;
  const T* states;  // [T, B, H]
  const T* dh;      // [B, H] dh_total
  T* dA;            // [T, B, H]
  T* dA_step;       // [B, H]
  int64_t H;
  bool is_relu;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H;
    if (!rows.active(b)) {
      dA_step[i] = T(0);
      return;
    }
    const int64_t row = rows.row(b);
    const T da = rnn_backward(states[row * H + j], dh[i], is_relu);
    dA[row * H + j] = da;
    dA_step[i] = da;
  }
};

template <typename T>
struct LstmBackward {
  StepRows rows;
  const T* gates;  // [T, B, 4H] activated
  const T* cells;  // [T, B, H]
  const T* c0;     // [B, H] or null
  const T* peep;   // [3, H] or null
  const T* dh;     // [B, dh_ld]: dh_total, or dm with a projection
  int64_t dh_ld;
  T* dc;           // [B, H] in: reaching c_t; out: reaching c_{t-1}
  T* dA;           // [T, B, 4H]
  T* dA_step;      // [B, 4H]
  Blocks blk;
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H, GH = 4 * H;
    const int64_t oi = blk.k[0] * H + j, of = blk.k[1] * H + j, og = blk.k[2] * H + j,
                  oo = blk.k[3] * H + j;
    T* ds = dA_step + b * GH;
    if (!rows.active(b)) {
      ds[oi] = ds[of] = ds[og] = ds[oo] = T(0);
      return;
    }
    const int64_t row = rows.row(b);
    const T* g = gates + row * GH;
    const T c_prev = rows.s == 0 ? (c0 ? c0[i] : T(0)) : cells[rows.prev_row(b) * H + j];
    const bool p = peep != nullptr;
    const LstmGrad<T> r = lstm_backward(g[oi], g[of], g[og], g[oo], cells[row * H + j], c_prev,
                                        dh[b * dh_ld + j], dc[i], p, p ? peep[j] : T(0),
                                        p ? peep[H + j] : T(0), p ? peep[2 * H + j] : T(0));
    T* da = dA + row * GH;
    da[oi] = ds[oi] = r.da_i;
    da[of] = ds[of] = r.da_f;
    da[og] = ds[og] = r.da_g;
    da[oo] = ds[oo] = r.da_o;
    dc[i] = r.dc_prev;
  }
};

template <typename T>
struct GruBackward {  // reset after
  StepRows rows;
  const T* gates;   // [T, B, 3H]
  const T* extra;   // [T, B, H] h @ Wh_n + bh_n
  const T* states;  // [T, B, H]
  const T* h0;      // [B, H] or null
  const T* dh;      // [B, H] dh_total
  T* dA;            // [T, B, 3H] recurrent side (n block: times r)
  T* dA_step;       // [B, 3H]
  T* dax;           // [T, B, H] the input side of the n block
  T* dh_direct;     // [B, H]
  Blocks blk;
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H, GH = 3 * H;
    const int64_t orr = blk.k[0] * H + j, oz = blk.k[1] * H + j, on = blk.k[2] * H + j;
    T* ds = dA_step + b * GH;
    if (!rows.active(b)) {
      ds[orr] = ds[oz] = ds[on] = T(0);
      return;
    }
    const int64_t row = rows.row(b);
    const T* g = gates + row * GH;
    const T h_prev = rows.s == 0 ? (h0 ? h0[i] : T(0)) : states[rows.prev_row(b) * H + j];
    const GruGrad<T> r = gru_backward(g[orr], g[oz], g[on], extra[row * H + j], h_prev, dh[i]);
    T* da = dA + row * GH;
    da[orr] = ds[orr] = r.da_r;
    da[oz] = ds[oz] = r.da_z;
    da[on] = ds[on] = r.dah_n;
    dax[row * H + j] = r.dax_n;
    dh_direct[i] = r.dh_prev;
  }
};

template <typename T>
struct GruBackwardZn {  // reset before, the stage-2 gates z and n
  StepRows rows;
  const T* gates;
  const T* states;
  const T* h0;
  const T* dh;
  T* dA;
  T* dA_step;
  T* dh_direct;
  Blocks blk;
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H, GH = 3 * H;
    const int64_t oz = blk.k[1] * H + j, on = blk.k[2] * H + j;
    T* ds = dA_step + b * GH;
    if (!rows.active(b)) {
      ds[oz] = ds[on] = T(0);
      return;
    }
    const int64_t row = rows.row(b);
    const T* g = gates + row * GH;
    const T h_prev = rows.s == 0 ? (h0 ? h0[i] : T(0)) : states[rows.prev_row(b) * H + j];
    const GruZnGrad<T> r = gru_backward_zn(g[oz], g[on], h_prev, dh[i]);
    T* da = dA + row * GH;
    da[oz] = ds[oz] = r.da_z;
    da[on] = ds[on] = r.da_n;
    dh_direct[i] = r.dh_prev;
  }
};

template <typename T>
struct GruBackwardR {  // reset before, after d_stage = da_n @ Wh_n^T
  StepRows rows;
  const T* gates;
  const T* h_prev_all;  // [T, B, H] unmasked h_{t-1}
  const T* mask;        // [B, H] or null
  const T* d_stage;     // [B, H]
  T* dA;
  T* dA_step;
  T* d_hr;              // [B, H] gradient reaching the masked h_{t-1}
  Blocks blk;
  int64_t H;
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t b = i / H, j = i % H, GH = 3 * H;
    const int64_t orr = blk.k[0] * H + j;
    if (!rows.active(b)) {
      dA_step[b * GH + orr] = T(0);
      d_hr[i] = T(0);
      return;
    }
    const int64_t row = rows.row(b);
    const T h_in = h_prev_all[row * H + j] * (mask ? mask[i] : T(1));
    const GruRGrad<T> r = gru_backward_r(gates[row * GH + orr], h_in, d_stage[i]);
    dA[row * GH + orr] = dA_step[b * GH + orr] = r.da_r;
    d_hr[i] = r.d_hin;
  }
};

// element (b, k) of [B, S]: the gradient reaching h_{t-1}; idle rows pass theirs through
template <typename T>
struct UpdateDh {
  StepRows rows;
  const T* d_hr;       // [B, S] through the recurrent product (w.r.t. the masked state)
  const T* dh_direct;  // [B, S] past the product (GRU), or null
  const T* mask;       // [B, S] or null
  T* dh;
  int64_t S;
  RNNKIT_HD void operator()(int64_t i) const {
    if (!rows.active(i / S)) return;
    const T d = mask ? mask[i] * d_hr[i] : d_hr[i];
    dh[i] = dh_direct ? dh_direct[i] + d : d;
  }
};

// element (row, j) of [T*B, H]: the terms of the peephole gradients, [rows, 3H]:
// da_i c_{t-1}, da_f c_{t-1}, da_o c_t (zero at padded positions), summed over rows later
template <typename T>
struct PeepholeTerms {
  const int64_t* lengths;
  int64_t T_, B, H;
  bool reverse;
  const T* dA;     // [T, B, 4H]
  const T* cells;  // [T, B, H]
  const T* c0;     // [B, H] or null
  Blocks blk;
  T* out;          // [T*B, 3H]
  RNNKIT_HD void operator()(int64_t i) const {
    const int64_t row = i / H, j = i % H, t = row / B, b = row % B, GH = 4 * H;
    const int64_t len = lengths ? lengths[b] : T_;
    T* o = out + row * 3 * H;
    if (t >= len) {
      o[j] = o[H + j] = o[2 * H + j] = T(0);
      return;
    }
    const int64_t s = reverse ? len - 1 - t : t;
    const T* da = dA + row * GH;
    const T da_i = da[blk.k[0] * H + j], da_f = da[blk.k[1] * H + j],
            da_o = da[blk.k[3] * H + j];
    if (s == 0) {
      o[j] = c0 ? da_i * c0[b * H + j] : T(0);
      o[H + j] = c0 ? da_f * c0[b * H + j] : T(0);
    } else {
      const T cp = cells[((reverse ? t + 1 : t - 1) * B + b) * H + j];
      o[j] = da_i * cp;
      o[H + j] = da_f * cp;
    }
    o[2 * H + j] = da_o * cells[row * H + j];
  }
};

}  // namespace rnnkit::cuda
