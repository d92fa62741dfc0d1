// LSTM policy, gates i, f, g, o: c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t); with Peepholes, i
// and f also read c_{t-1} and o reads c_t through diagonal weights (docs/design.md "Cell
// equations"). Backward needs the activated gates and c_t; dc flows backwards next to dh.
// The output projection (Dims::P > 0) is the time loop's, not the policy's: the policy computes
// the cell's output, the loop multiplies it by Wr.
#pragma once

#include <algorithm>

#include "cpu/cells/policy.h"
#include "cpu/normalization.h"

namespace rnnkit::cpu {

template <bool Peepholes>
struct LstmPolicy {
  static constexpr int kGates = 4;
  static constexpr int kStages = 1;
  static constexpr bool kCellState = true;
  static constexpr bool kKeepsGates = true;
  static constexpr bool kExtra = false;
  static constexpr bool kExtraIsStageInput = false;
  static constexpr bool kDirectPath = false;
  static constexpr bool kPeepholes = Peepholes;
  static constexpr bool kProjectable = true;
  static constexpr bool kNormalizableCell = true;

  static BlockRange stage_blocks(const CellSpec&, int) { return {0, 4}; }
  static int unfolded_bias_block(const CellSpec&) { return -1; }
  static int separate_input_grad_block(const CellSpec&) { return -1; }

  template <typename T>
  static void forward_tile(const PointwiseKernels<T>& K, int, const ForwardTile<T>& t) {
    K.lstm_forward(t.ax, t.ah, t.c_prev, t.peep, t.block, t.gates, t.c, t.h, t.n, t.gs);
  }
  template <typename T>
  static void backward_row(const PointwiseKernels<T>& K, const BackwardRow<T>& r) {
    // dc_{t-1} overwrites dc_t in place (the kernel reads each lane before writing it)
    K.lstm_backward(r.gates, r.c, r.c_prev, r.peep, r.dh, r.dc, r.block, r.da, r.dc, r.n, r.H);
  }

  // A layer-normalised cell state (LayerNorm::cell()): h_t = o * tanh(u), u = LN(c_t) * gamma
  // + beta, over the whole row once every tile has its c_t and o. Writes h, the normalised c
  // before its gain (chat) and returns its rstd. scratch: [H].
  template <typename T>
  static T normalized_output(const PointwiseKernels<T>& K, const T* gates, const T* c,
                             const int* block, const T* gamma, const T* beta, T* chat, T* h,
                             T* scratch, int64_t H) {
    std::copy(c, c + H, scratch);
    const T rstd = K.layer_norm(scratch, gamma, beta, H, chat);
    K.tanh(scratch, scratch, H);
    const T* o = gates + block[3] * H;
    for (int64_t j = 0; j < H; ++j) h[j] = o[j] * scratch[j];
    return rstd;
  }
  // backward_row for that output: du = dh * o * (1 - tanh(u)^2) (kept in du, for the gain's
  // gradients) reaches c_t through the layer norm, o's gradient comes from dh * tanh(u), and
  // the kernel does the rest with no gradient of its own h. scratch: [2H].
  template <typename T>
  static void normalized_backward_row(const PointwiseKernels<T>& K, const BackwardRow<T>& r,
                                      const T* gamma, const T* beta, const T* chat, T rstd,
                                      T* du, T* scratch) {
    const int64_t H = r.H;
    T* tu = scratch;
    T* zeros = scratch + H;
    for (int64_t j = 0; j < H; ++j) tu[j] = chat[j] * gamma[j] + beta[j];
    K.tanh(tu, tu, H);
    const T* o = r.gates + r.block[3] * H;
    for (int64_t j = 0; j < H; ++j) du[j] = r.dh[j] * o[j] * (T(1) - tu[j] * tu[j]);
    std::copy(du, du + H, zeros);
    K.layer_norm_backward(zeros, gamma, chat, rstd, H);
    for (int64_t j = 0; j < H; ++j) r.dc[j] += zeros[j];
    std::fill(zeros, zeros + H, T(0));
    K.lstm_backward(r.gates, r.c, r.c_prev, r.peep, zeros, r.dc, r.block, r.da, r.dc, H, H);
    T* da_o = r.da + r.block[3] * H;
    for (int64_t j = 0; j < H; ++j) da_o[j] = r.dh[j] * tu[j] * o[j] * (T(1) - o[j]);
  }

  template <typename T>
  static void backward_stage(const PointwiseKernels<T>&, int, const BackwardRow<T>&) {}
};

}  // namespace rnnkit::cpu
