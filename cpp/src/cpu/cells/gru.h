// GRU policy, gates r, z, n, h_t = (1-z)*n + z*h_{t-1}; both reset variants of docs/design.md "Cell equations".
//
// ResetAfter (PyTorch/cuDNN): n = tanh(ax_n + r*(h@Wh_n + bh_n)). One stage; bh_n stays out of
// the projection (r multiplies it); the reserve's extra is h@Wh_n + bh_n; the input side of
// the n block has no factor r, so its gradient is separate (dax).
// Reset before (Cho et al., ONNX default): n = tanh(ax_n + (r*h)@Wh_n). Two stages: r, z from
// the product of h, then the n block's product of r*h, which the reserve keeps as its extra.
#pragma once

#include <stdexcept>

#include "cpu/cells/policy.h"

namespace rnnkit::cpu {

template <bool ResetAfter>
struct GruPolicy {
  static constexpr int kGates = 3;
  static constexpr int kStages = ResetAfter ? 1 : 2;
  static constexpr bool kCellState = false;
  static constexpr bool kKeepsGates = true;
  static constexpr bool kExtra = true;
  static constexpr bool kExtraIsStageInput = !ResetAfter;
  static constexpr bool kDirectPath = true;
  static constexpr bool kPeepholes = false;
  static constexpr bool kProjectable = false;
  static constexpr bool kNormalizableCell = false;

  static BlockRange stage_blocks(const CellSpec& spec, int stage) {
    if (ResetAfter) return {0, 3};
    // stage 0 multiplies the r and z blocks in one product: they must be adjacent (true for
    // r,z,n and for the Keras/ONNX z,r,n order)
    const int n_block = spec.gate_block[2];
    if (n_block != 0 && n_block != 2)
      throw std::invalid_argument("GRU gate order must keep the r and z blocks adjacent");
    return stage == 0 ? BlockRange{n_block == 0 ? 1 : 0, 2} : BlockRange{n_block, 1};
  }
  static int unfolded_bias_block(const CellSpec& spec) { return ResetAfter ? spec.gate_block[2] : -1; }
  static int separate_input_grad_block(const CellSpec& spec) {
    return ResetAfter ? spec.gate_block[2] : -1;
  }

  template <typename T>
  static void forward_tile(const PointwiseKernels<T>& K, int stage, const ForwardTile<T>& t) {
    if (ResetAfter) {
      K.gru_forward(t.ax, t.ah, t.bias, t.h_prev, t.block, t.gates, t.extra, t.h, t.n, t.gs);
    } else if (stage == 0) {
      // the activations go to ax even in inference: stage 1 reads z from there
      K.gru_forward_rz(t.ax, t.ah, t.h_in, t.block, t.ax, t.stage_out, t.n, t.gs);
    } else {
      K.gru_forward_n(t.ax, t.ah + t.block[2] * t.gs, t.h_prev, t.block, t.ax, t.h, t.n, t.gs);
    }
  }
  template <typename T>
  static void backward_row(const PointwiseKernels<T>& K, const BackwardRow<T>& r) {
    if (ResetAfter)
      K.gru_backward(r.gates, r.extra, r.h_prev, r.dh, r.block, r.da, r.dax, r.dh_direct, r.n, r.H);
    else
      K.gru_backward_zn(r.gates, r.h_prev, r.dh, r.block, r.da, r.dh_direct, r.n, r.H);
  }
  // reset before, stage 1 -> 0: d_stage = da_n @ Wh_n^T gives da's r block and d_hr
  template <typename T>
  static void backward_stage(const PointwiseKernels<T>& K, int, const BackwardRow<T>& r) {
    K.gru_backward_r(r.gates, r.h_in, r.d_stage, r.block, r.da, r.d_hr, r.n, r.H);
  }
};

}  // namespace rnnkit::cpu
