// Vanilla RNN policy: h_t = phi(a_t), phi = tanh or relu (Relu). One gate; backward needs only
// the states (phi' is computed from h_t).
#pragma once

#include "cpu/cells/policy.h"

namespace rnnkit::cpu {

template <bool Relu>
struct RnnPolicy {
  static constexpr int kGates = 1;
  static constexpr int kStages = 1;
  static constexpr bool kCellState = false;
  static constexpr bool kKeepsGates = false;
  static constexpr bool kExtra = false;
  static constexpr bool kExtraIsStageInput = false;
  static constexpr bool kDirectPath = false;
  static constexpr bool kPeepholes = false;
  static constexpr bool kProjectable = false;
  static constexpr bool kNormalizableCell = false;

  static BlockRange stage_blocks(const CellSpec&, int) { return {0, 1}; }
  static int unfolded_bias_block(const CellSpec&) { return -1; }
  static int separate_input_grad_block(const CellSpec&) { return -1; }

  template <typename T>
  static void forward_tile(const PointwiseKernels<T>& K, int, const ForwardTile<T>& t) {
    K.rnn_forward(t.ax, t.ah, Relu, t.h, t.n);
  }
  template <typename T>
  static void backward_row(const PointwiseKernels<T>& K, const BackwardRow<T>& r) {
    K.rnn_backward(r.h, r.dh, Relu, r.da, r.n);
  }
  template <typename T>
  static void backward_stage(const PointwiseKernels<T>&, int, const BackwardRow<T>&) {}
};

}  // namespace rnnkit::cpu
