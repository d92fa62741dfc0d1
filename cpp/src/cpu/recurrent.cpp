// Time loops of the recurrent cells (DESIGN.md "Kernels"):
//  1. one GEMM projects the inputs of all steps: XW = x @ Wx + biases, [T*B, G*H];
//  2. per step, one GEMM h_{t-1} @ Wh followed by the fused pointwise gate kernel of the
//     active ISA, row by row, storing what backward needs in the reserve (training only);
//  3. backward runs the steps in reverse producing the gate gradients dA_t and
//     dh_{t-1} = dA_t @ Wh^T; the weight gradients are then large GEMMs over all steps.
//
// Steps and positions: step s of batch row b processes time position
// t = s (forward) or t = length_b - 1 - s (reverse), and only while s < length_b. Rows past
// their length keep their state, so final states are those after each row's own last step.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "cpu/simd/kernels.h"
#include "rnnkit/recurrent.h"
#include "rnnkit/runtime.h"

namespace rnnkit {
namespace {

struct StepMap {
  const int64_t* lengths;
  int64_t T;
  bool reverse;

  int64_t length(int64_t b) const { return lengths ? lengths[b] : T; }
  bool active(int64_t s, int64_t b) const { return s < length(b); }
  int64_t position(int64_t s, int64_t b) const { return reverse ? length(b) - 1 - s : s; }
  // true when every row has the full length, so a step touches one contiguous [B, .] slab
  bool uniform(int64_t B) const {
    if (!lengths) return true;
    for (int64_t b = 0; b < B; ++b)
      if (lengths[b] != T) return false;
    return true;
  }
};

template <typename T>
void copy_row(const T* src, T* dst, int64_t n) {
  if (src) std::memcpy(dst, src, sizeof(T) * n);
  else std::fill(dst, dst + n, T(0));
}

// Column block offsets of a GRU: the r and z blocks must be adjacent so that the reset-before
// variant can multiply them in one GEMM (true for r,z,n and for Keras/ONNX z,r,n orders).
struct GruColumns {
  int64_t rz, n;
};
GruColumns gru_columns(const CellSpec& spec, int64_t H) {
  if (spec.gate_block[2] != 0 && spec.gate_block[2] != 2)
    throw std::invalid_argument("GRU gate order must keep the r and z blocks adjacent");
  return {spec.gate_block[2] == 0 ? H : 0, spec.gate_block[2] * H};
}

// Sums the rows of a [rows, cols] matrix with leading dimension ld into out[cols].
template <typename T>
void column_sums(const T* a, int64_t rows, int64_t cols, int64_t ld, T* out) {
  std::fill(out, out + cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = a + r * ld;
    for (int64_t c = 0; c < cols; ++c) out[c] += row[c];
  }
}

}  // namespace

template <typename T>
void forward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
             const LayerOutputs<T>& out, Reserve<T>* reserve) {
  const int64_t Tn = dims.T, B = dims.B, I = dims.I, H = dims.H;
  const int64_t G = spec.gates(), GH = G * H;
  const PointwiseKernels<T>& K = kernels<T>();
  const StepMap steps{in.lengths, Tn, in.reverse};
  const bool uniform = steps.uniform(B);
  const bool is_gru = spec.kind == CellKind::Gru;
  const bool reset_after = is_gru && spec.linear_before_reset;
  const GruColumns gru = is_gru ? gru_columns(spec, H) : GruColumns{0, 0};

  // 1. input projection; in training it becomes the gate reserve (kernels write in place)
  std::vector<T> xw_local;
  T* xw;
  if (reserve) {
    reserve->dims = dims;
    reserve->spec = spec;
    reserve->gates.assign(Tn * B * GH, T(0));
    reserve->states.assign(Tn * B * H, T(0));
    reserve->cells.assign(spec.has_cell_state() ? Tn * B * H : 0, T(0));
    reserve->extra.assign(is_gru ? Tn * B * H : 0, T(0));
    xw = reserve->gates.data();
  } else {
    xw_local.resize(Tn * B * GH);
    xw = xw_local.data();
  }
  // Both biases add to the pre-activation, except a reset-after GRU's bh_n, which the reset
  // gate multiplies: it is passed to the kernel instead.
  std::vector<T> bias(in.b, in.b + GH);
  if (in.bh)
    for (int64_t k = 0; k < GH; ++k)
      if (!(reset_after && k >= gru.n && k < gru.n + H)) bias[k] += in.bh[k];
  for (int64_t r = 0; r < Tn * B; ++r) std::memcpy(xw + r * GH, bias.data(), sizeof(T) * GH);
  gemm<T>(false, false, Tn * B, GH, I, T(1), in.x, I, in.Wx, GH, T(1), xw, GH);
  const T* bh_n = (reset_after && in.bh) ? in.bh + gru.n : nullptr;

  // 2. the sequential loop
  std::vector<T> h(B * H), c(spec.has_cell_state() ? B * H : 0), c_next(c.size());
  std::vector<T> hw(B * GH), rh(is_gru ? B * H : 0), hw_n(is_gru ? B * H : 0);
  std::vector<T> hn_row(reset_after ? H : 0);
  // hr: what enters the recurrent product, h or h * recurrent_mask
  std::vector<T> masked(in.recurrent_mask ? B * H : 0);
  T* hr = in.recurrent_mask ? masked.data() : h.data();
  for (int64_t b = 0; b < B; ++b) {
    copy_row(in.h0 ? in.h0 + b * H : nullptr, h.data() + b * H, H);
    if (spec.has_cell_state()) copy_row(in.c0 ? in.c0 + b * H : nullptr, c.data() + b * H, H);
  }
  if (!uniform) std::fill(out.y, out.y + Tn * B * H, T(0));

  const bool relu = spec.kind == CellKind::RnnRelu;
  for (int64_t s = 0; s < Tn; ++s) {
    if (in.recurrent_mask)
      for (int64_t k = 0; k < B * H; ++k) masked[k] = h[k] * in.recurrent_mask[k];
    if (is_gru && !reset_after)
      gemm<T>(false, false, B, 2 * H, H, T(1), hr, H, in.Wh + gru.rz, GH, T(0),
              hw.data() + gru.rz, GH);
    else
      gemm<T>(false, false, B, GH, H, T(1), hr, H, in.Wh, GH, T(0), hw.data(), GH);

    if (is_gru && !reset_after) {
      // stage 1 for every active row, then the n-block product of r * h_prev, then stage 2
      for (int64_t b = 0; b < B; ++b) {
        if (!steps.active(s, b)) continue;
        const int64_t t = steps.position(s, b);
        T* ax = xw + (t * B + b) * GH;
        K.gru_forward_rz(ax, hw.data() + b * GH, hr + b * H, spec.gate_block, ax,
                         rh.data() + b * H, H);
        if (reserve) std::memcpy(reserve->extra.data() + (t * B + b) * H, rh.data() + b * H, sizeof(T) * H);
      }
      gemm<T>(false, false, B, H, H, T(1), rh.data(), H, in.Wh + gru.n, GH, T(0), hw_n.data(), H);
    }

    for (int64_t b = 0; b < B; ++b) {
      if (!steps.active(s, b)) continue;
      const int64_t t = steps.position(s, b), row = t * B + b;
      T* ax = xw + row * GH;
      const T* ah = hw.data() + b * GH;
      T* y = out.y + row * H;
      T* gates = reserve ? ax : nullptr;
      switch (spec.kind) {
        case CellKind::RnnTanh:
        case CellKind::RnnRelu:
          K.rnn_forward(ax, ah, relu, y, H);
          break;
        case CellKind::Lstm: {
          T* c_out = reserve ? reserve->cells.data() + row * H : c_next.data() + b * H;
          K.lstm_forward(ax, ah, c.data() + b * H, spec.gate_block, gates, c_out, y, H);
          std::memcpy(c.data() + b * H, c_out, sizeof(T) * H);
          break;
        }
        case CellKind::Gru:
          if (reset_after)
            K.gru_forward(ax, ah, bh_n, h.data() + b * H, spec.gate_block, gates,
                          reserve ? reserve->extra.data() + row * H : hn_row.data(), y, H);
          else
            K.gru_forward_n(ax, hw_n.data() + b * H, h.data() + b * H, spec.gate_block, ax, y, H);
          break;
      }
      std::memcpy(h.data() + b * H, y, sizeof(T) * H);
      if (reserve) std::memcpy(reserve->states.data() + row * H, y, sizeof(T) * H);
    }
  }
  if (out.hT) std::memcpy(out.hT, h.data(), sizeof(T) * B * H);
  if (out.cT && spec.has_cell_state()) std::memcpy(out.cT, c.data(), sizeof(T) * B * H);
}

template <typename T>
void backward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
              const Reserve<T>& reserve, const LayerGrads<T>& g) {
  const int64_t Tn = dims.T, B = dims.B, I = dims.I, H = dims.H;
  const int64_t G = spec.gates(), GH = G * H, rows = Tn * B;
  const PointwiseKernels<T>& K = kernels<T>();
  const StepMap steps{in.lengths, Tn, in.reverse};
  const bool uniform = steps.uniform(B);
  const bool is_gru = spec.kind == CellKind::Gru;
  const bool reset_after = is_gru && spec.linear_before_reset;
  const GruColumns gru = is_gru ? gru_columns(spec, H) : GruColumns{0, 0};
  const bool relu = spec.kind == CellKind::RnnRelu;

  // dA: gradient w.r.t. the recurrent pre-activations, [T, B, G*H] by position (zero where
  // padded). For RNN, LSTM and the reset-before GRU it is also the input-side gradient;
  // the reset-after GRU's input-side n block differs (no factor r) and lives in dax_n.
  std::vector<T> dA(rows * GH, T(0)), dax_n(reset_after ? rows * H : 0, T(0));
  std::vector<T> h_prev_all(rows * H, T(0));  // h_{t-1} of every position, for dWh
  // dh_direct: gradient reaching h_{t-1} past the recurrent product (a GRU's z * h_{t-1});
  // d_hr: gradient w.r.t. the recurrent product's input (h_{t-1}, times the mask if any).
  std::vector<T> dh(B * H), dc(spec.has_cell_state() ? B * H : 0), dh_direct(is_gru ? B * H : 0);
  std::vector<T> d_hr(B * H), dA_scratch(uniform ? 0 : B * GH), d_rh(is_gru ? B * H : 0);
  std::vector<T> dh_total(H), hr_row(H);
  const T* mask = in.recurrent_mask;
  for (int64_t b = 0; b < B; ++b) {
    copy_row(g.dhT ? g.dhT + b * H : nullptr, dh.data() + b * H, H);
    if (spec.has_cell_state()) copy_row(g.dcT ? g.dcT + b * H : nullptr, dc.data() + b * H, H);
  }

  for (int64_t s = Tn - 1; s >= 0; --s) {
    T* dA_step = uniform ? dA.data() + steps.position(s, 0) * B * GH : dA_scratch.data();
    if (!uniform) std::fill(dA_scratch.begin(), dA_scratch.end(), T(0));

    for (int64_t b = 0; b < B; ++b) {
      if (!steps.active(s, b)) continue;
      const int64_t t = steps.position(s, b), row = t * B + b;
      const T* h_prev = s == 0 ? (in.h0 ? in.h0 + b * H : nullptr)
                               : reserve.states.data() + (steps.position(s - 1, b) * B + b) * H;
      copy_row(h_prev, h_prev_all.data() + row * H, H);
      for (int64_t j = 0; j < H; ++j)
        dh_total[j] = dh[b * H + j] + (g.dy ? g.dy[row * H + j] : T(0));
      const T* gates = reserve.gates.data() + row * GH;
      T* da = dA_step + b * GH;
      switch (spec.kind) {
        case CellKind::RnnTanh:
        case CellKind::RnnRelu:
          K.rnn_backward(reserve.states.data() + row * H, dh_total.data(), relu, da, H);
          break;
        case CellKind::Lstm: {
          const T* c_prev = s == 0 ? (in.c0 ? in.c0 + b * H : nullptr)
                                   : reserve.cells.data() + (steps.position(s - 1, b) * B + b) * H;
          // dc_prev overwrites dc in place (read lane by lane before it is written)
          K.lstm_backward(gates, reserve.cells.data() + row * H, c_prev, dh_total.data(),
                          dc.data() + b * H, spec.gate_block, da, dc.data() + b * H, H);
          break;
        }
        case CellKind::Gru:
          if (reset_after)
            K.gru_backward(gates, reserve.extra.data() + row * H, h_prev, dh_total.data(),
                           spec.gate_block, da, dax_n.data() + row * H, dh_direct.data() + b * H, H);
          else
            K.gru_backward_zn(gates, h_prev, dh_total.data(), spec.gate_block, da,
                              dh_direct.data() + b * H, H);
          break;
      }
    }

    if (is_gru && !reset_after) {
      gemm<T>(false, true, B, H, H, T(1), dA_step + gru.n, GH, in.Wh + gru.n, GH, T(0),
              d_rh.data(), H);
      for (int64_t b = 0; b < B; ++b) {
        if (!steps.active(s, b)) continue;
        const int64_t t = steps.position(s, b), row = t * B + b;
        const T* h_in = h_prev_all.data() + row * H;
        if (mask) {
          for (int64_t j = 0; j < H; ++j) hr_row[j] = h_in[j] * mask[b * H + j];
          h_in = hr_row.data();
        }
        K.gru_backward_r(reserve.gates.data() + row * GH, h_in, d_rh.data() + b * H,
                         spec.gate_block, dA_step + b * GH, d_hr.data() + b * H, H);
      }
      gemm<T>(false, true, B, H, 2 * H, T(1), dA_step + gru.rz, GH, in.Wh + gru.rz, GH, T(1),
              d_hr.data(), H);
    } else {
      gemm<T>(false, true, B, H, GH, T(1), dA_step, GH, in.Wh, GH, T(0), d_hr.data(), H);
    }

    for (int64_t b = 0; b < B; ++b) {
      if (!steps.active(s, b)) continue;  // rows past their length pass dh through unchanged
      for (int64_t j = 0; j < H; ++j) {
        const int64_t k = b * H + j;
        dh[k] = (is_gru ? dh_direct[k] : T(0)) + (mask ? mask[k] * d_hr[k] : d_hr[k]);
      }
      if (!uniform)
        std::memcpy(dA.data() + (steps.position(s, b) * B + b) * GH, dA_step + b * GH,
                    sizeof(T) * GH);
    }
  }
  if (g.dh0) std::memcpy(g.dh0, dh.data(), sizeof(T) * B * H);
  if (g.dc0 && spec.has_cell_state()) std::memcpy(g.dc0, dc.data(), sizeof(T) * B * H);

  // 3. weight, bias and input gradients as GEMMs over all T*B rows; Wh saw h_{t-1} * mask
  if (mask)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < H; ++j) h_prev_all[r * H + j] *= mask[(r % B) * H + j];
  if (!reset_after) {
    gemm<T>(true, false, I, GH, rows, T(1), in.x, I, dA.data(), GH, T(0), g.dWx, GH);
    gemm<T>(false, true, rows, I, GH, T(1), dA.data(), GH, in.Wx, GH, T(0), g.dx, I);
    column_sums(dA.data(), rows, GH, GH, g.db);
    if (g.dbh) std::memcpy(g.dbh, g.db, sizeof(T) * GH);
    if (is_gru) {  // reset before: the n block multiplies r * h_prev, not h_prev
      gemm<T>(true, false, H, 2 * H, rows, T(1), h_prev_all.data(), H, dA.data() + gru.rz, GH,
              T(0), g.dWh + gru.rz, GH);
      gemm<T>(true, false, H, H, rows, T(1), reserve.extra.data(), H, dA.data() + gru.n, GH,
              T(0), g.dWh + gru.n, GH);
    } else {
      gemm<T>(true, false, H, GH, rows, T(1), h_prev_all.data(), H, dA.data(), GH, T(0), g.dWh, GH);
    }
  } else {
    gemm<T>(true, false, H, GH, rows, T(1), h_prev_all.data(), H, dA.data(), GH, T(0), g.dWh, GH);
    gemm<T>(true, false, I, 2 * H, rows, T(1), in.x, I, dA.data() + gru.rz, GH, T(0),
            g.dWx + gru.rz, GH);
    gemm<T>(true, false, I, H, rows, T(1), in.x, I, dax_n.data(), H, T(0), g.dWx + gru.n, GH);
    gemm<T>(false, true, rows, I, 2 * H, T(1), dA.data() + gru.rz, GH, in.Wx + gru.rz, GH, T(0),
            g.dx, I);
    gemm<T>(false, true, rows, I, H, T(1), dax_n.data(), H, in.Wx + gru.n, GH, T(1), g.dx, I);
    column_sums(dA.data() + gru.rz, rows, 2 * H, GH, g.db + gru.rz);
    column_sums(dax_n.data(), rows, H, H, g.db + gru.n);
    if (g.dbh) column_sums(dA.data(), rows, GH, GH, g.dbh);
  }
}

template void forward<float>(const CellSpec&, const Dims&, const LayerInputs<float>&,
                             const LayerOutputs<float>&, Reserve<float>*);
template void forward<double>(const CellSpec&, const Dims&, const LayerInputs<double>&,
                              const LayerOutputs<double>&, Reserve<double>*);
template void backward<float>(const CellSpec&, const Dims&, const LayerInputs<float>&,
                              const Reserve<float>&, const LayerGrads<float>&);
template void backward<double>(const CellSpec&, const Dims&, const LayerInputs<double>&,
                               const Reserve<double>&, const LayerGrads<double>&);

}  // namespace rnnkit
