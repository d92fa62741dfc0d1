// What a cell policy gives the CPU time loops (recurrent.cpp), and the per-tile / per-row
// views the loops hand it. A policy is a struct of constants and static functions:
//
//   kGates              G, the H-wide column blocks of Wx, Wh, b, bh (matches cells.cpp)
//   kStages             recurrent products per step; each is followed by the cell's pointwise
//                       math on that tile. Stage 0 multiplies the (masked) state h_{t-1}; a
//                       later stage multiplies what the previous stage wrote to `stage_out`.
//   kCellState          carries c besides h
//   kKeepsGates         backward reads the activated gates: in training the input projection
//                       buffer becomes the reserve's gates and the kernels write in place
//   kExtra              the reserve has one more [T, B, H] buffer, the cell's own
//   kExtraIsStageInput  ... which is the last stage's product input, saved after each step
//                       (the kernels write it themselves otherwise, through `extra`)
//   kDirectPath         h_{t-1} also reaches h_t outside the recurrent product (dh_direct)
//   kPeepholes          reads the diagonal peephole weights (`peep`, [3, H])
//   kProjectable        may run with an output projection h_t = m_t @ Wr (Dims::P > 0): the
//                       loop feeds the policy's output m_t through Wr; needs one stage and no
//                       direct path, which read h_{t-1} as H wide
//   stage_blocks(spec, s)             Wh column blocks [first, first + count) of stage s
//   unfolded_bias_block(spec)         block whose bh stays out of the projection (-1: none);
//                                     the kernels get it as `bias`
//   separate_input_grad_block(spec)   block whose input-side gradient differs from dA (-1:
//                                     none); backward_row writes it to `dax`
//   forward_tile(K, stage, tile)      the pointwise math of one stage on one tile of one row
//   backward_row(K, row)              gate gradients dA of one row at one step
//   backward_stage(K, stage, row)     for stage >= 1: from `d_stage` (the gradient w.r.t. the
//                                     stage's product input) to the earlier stages' dA blocks
//                                     and `d_hr`
//
// The loops never branch on a cell's name; a new cell is a new policy plus its entry in
// registry.h. ISA-specific code stays in the kernel table: policies call its pointers.
#pragma once

#include <cstdint>

#include "cpu/simd/kernels.h"
#include "rnnkit/cells.h"

namespace rnnkit::cpu {

struct BlockRange {
  int first, count;  // H-wide column blocks of Wh
};

// One tile (n hidden units, from unit j0) of one batch row at one forward step. Every pointer
// already points at the tile's first unit; gate-wide rows ([G*H]) hold gate k at
// row + block[k] * gs. Pointers a cell does not use are null.
template <typename T>
struct ForwardTile {
  T* ax;                // [G*H] input projection (biases folded in); activations in place
  const T* ah;          // [G*H] this step's recurrent products
  T* gates;             // [G*H] = ax in training, null in inference
  const T* h_prev;      // [H] state entering the step
  const T* h_in;        // [H] what entered the recurrent product: h_prev, times the mask
  const T* c_prev;      // [H] cell state entering the step (kCellState)
  T* c;                 // [H] new cell state (kCellState)
  T* extra;             // [H] the cell's reserve buffer, or scratch in inference (kExtra)
  T* stage_out;         // [H] input of the next stage's product (kStages > 1)
  const T* bias;        // [H] the unfolded recurrent bias block, or null
  const T* peep;        // [3*gs] peephole weights p_i, p_f, p_o at stride gs (kPeepholes)
  T* h;                 // [H] the cell's output: the new state, or what Wr projects
  const int* block;     // [G] column block of each canonical gate
  int64_t n, gs;        // units in the tile, gate stride (H)
};

// One batch row at one backward step: n units from the pointers' first unit (a whole row,
// n = H, or a team member's units), gate-wide rows with gate stride H. Activation gradients
// are assigned.
template <typename T>
struct BackwardRow {
  const T* gates;       // [G*H] activated gates (kKeepsGates)
  const T* h;           // [H] state after the step
  const T* h_prev;      // [H] state before the step, null = zeros
  const T* h_in;        // [H] h_prev as it entered the product (masked), never null
  const T* c;           // [H] cell state after the step (kCellState)
  const T* c_prev;      // [H] cell state before the step, null = zeros
  const T* extra;       // [H] the cell's reserve buffer (kExtra)
  const T* peep;        // [3*H] peephole weights (kPeepholes)
  const T* dh;          // [H] gradient reaching the cell's output (h_t, or m_t when projected)
  T* dc;                // [H] in: gradient reaching c_t; out: the one reaching c_{t-1}
  T* da;                // [G*H] out: gradient w.r.t. the recurrent pre-activations
  T* dax;               // [H] out: the separate input-side block (separate_input_grad_block)
  T* dh_direct;         // [H] out: gradient reaching h_{t-1} outside the product (kDirectPath)
  const T* d_stage;     // [H] in: gradient w.r.t. a later stage's product input
  T* d_hr;              // [H] out (backward_stage): gradient w.r.t. h_in
  const int* block;
  int64_t n, H;
};

}  // namespace rnnkit::cpu
