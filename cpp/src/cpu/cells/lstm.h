// LSTM policy, gates i, f, g, o: c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t); with Peepholes, i
// and f also read c_{t-1} and o reads c_t through diagonal weights (docs/design.md "Cell
// equations"). Backward needs the activated gates and c_t; dc flows backwards next to dh.
// The output projection (Dims::P > 0) is the time loop's, not the policy's: the policy computes
// the cell's output, the loop multiplies it by Wr.
#pragma once

#include "cpu/cells/policy.h"

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
    K.lstm_backward(r.gates, r.c, r.c_prev, r.peep, r.dh, r.dc, r.block, r.da, r.dc, r.H, r.H);
  }
  template <typename T>
  static void backward_stage(const PointwiseKernels<T>&, int, const BackwardRow<T>&) {}
};

}  // namespace rnnkit::cpu
