// The CPU backend's typed interface to its time loops (recurrent.cpp): typed views of one
// call and the reserve the CPU keeps for backward. Private to the CPU backend; callers go
// through rnnkit/backend.h.
//
// Letters (docs/design.md): T time steps, B batch, I input features, H hidden units,
// G gates (RNN 1, GRU 3, LSTM 4), P projection width, S state width (P when projected, else
// H). All arrays are dense row-major; sequences are time-major.
#pragma once

#include <cstdint>
#include <vector>

#include "rnnkit/backend.h"

namespace rnnkit {

// Normalisation inside the recurrence (rnnkit/backend.h NormViews), typed.
template <typename T>
struct LayerNorm {
  NormKind kind = NormKind::None;
  const T* gamma_x = nullptr;  // [G*H]
  const T* gamma_h = nullptr;  // [G*H]
  const T* gamma_c = nullptr;  // [H] optional (layer norm of a cell state)
  const T* beta_c = nullptr;   // [H]
  bool on() const { return kind != NormKind::None; }
  bool cell() const { return gamma_c != nullptr; }
};

// Inputs of one layer, one direction. Optional pointers may be null (zeros / absent).
template <typename T>
struct LayerInputs {
  const T* x = nullptr;               // [T, B, I]
  const T* h0 = nullptr;              // [B, S] optional
  const T* c0 = nullptr;              // [B, H] optional, LSTM only
  const T* Wx = nullptr;              // [I, G*H] input-to-hidden weights
  const T* Wh = nullptr;              // [S, G*H] hidden-to-hidden weights
  const T* b = nullptr;               // [G*H] input bias
  const T* bh = nullptr;              // [G*H] optional recurrent bias
  const T* Wr = nullptr;              // [H, P] output projection (Dims::P > 0)
  const T* peepholes = nullptr;       // [3, H] p_i, p_f, p_o (CellSpec::peepholes)
  const int64_t* lengths = nullptr;   // [B] optional, 0 <= lengths[b] <= T (checked by callers)
  bool reverse = false;               // run each sequence from its own last valid step down to 0
  // [B, S] optional: multiplies h_{t-1} where it enters the recurrent product (variational
  // recurrent dropout: one mask per sequence, the same at every step). The direct path of a
  // GRU (z * h_{t-1}) and the carried state are not masked.
  const T* recurrent_mask = nullptr;
  LayerNorm<T> norm;
};

template <typename T>
struct LayerOutputs {
  T* y = nullptr;   // [T, B, S] outputs; zero past each sequence's length
  T* hT = nullptr;  // [B, S] state after each sequence's own last step
  T* cT = nullptr;  // [B, H] LSTM only
  T* batch_stats = nullptr;  // [4, G*H] optional, batch norm (OutputViews::batch_stats)
};

// What backward needs, filled by a training-mode forward. Buffers are indexed by time
// position (not by step), so padded positions stay zero and big GEMMs can run over all steps.
template <typename T>
struct CpuReserve final : Reserve {
  Dims dims;
  CellSpec spec;
  std::vector<T> gates;   // [T, B, G*H] activated gates (LSTM, GRU; an RNN's state is its gate)
  std::vector<T> states;  // [T, B, S] h at each valid position
  std::vector<T> cells;   // [T, B, H] LSTM c_t
  std::vector<T> extra;   // [T, B, H] GRU: h@Wh_n + bh_n (reset after) or r*h_prev (reset before)
  std::vector<T> unprojected;  // [T, B, H] the cell's output before the projection (P > 0)
  // Normalisation (LayerNorm): the normalised products before their gains, x_t @ Wx and
  // h_{t-1} @ Wh ([T, B, G*H]) and the cell state ([T, B, H]), and the reciprocal standard
  // deviations they were divided by: per position row ([T, B]) for a layer norm, per step and
  // feature ([T, G*H]) for a batch norm.
  std::vector<T> norm_x, norm_h, norm_c;
  std::vector<T> rstd_x, rstd_h, rstd_c;
  size_t nbytes() const override {
    return (gates.size() + states.size() + cells.size() + extra.size() + unprojected.size() +
            norm_x.size() + norm_h.size() + norm_c.size() + rstd_x.size() + rstd_h.size() +
            rstd_c.size()) * sizeof(T);
  }
};

template <typename T>
struct LayerGrads {
  const T* dy = nullptr;   // [T, B, S] optional
  const T* dhT = nullptr;  // [B, S] optional
  const T* dcT = nullptr;  // [B, H] optional, LSTM only
  // Results; all assigned (=), not accumulated. dbh may be null when the layer has no bh.
  T* dx = nullptr;   // [T, B, I]
  T* dh0 = nullptr;  // [B, S]
  T* dc0 = nullptr;  // [B, H] LSTM only
  T* dWx = nullptr;  // [I, G*H]
  T* dWh = nullptr;  // [S, G*H]
  T* db = nullptr;   // [G*H]
  T* dbh = nullptr;  // [G*H]
  T* dWr = nullptr;         // [H, P] with a projection
  T* dpeepholes = nullptr;  // [3, H] with peepholes
  T* dgamma_x = nullptr;    // [G*H] with normalisation
  T* dgamma_h = nullptr;    // [G*H]
  T* dgamma_c = nullptr;    // [H] with a normalised cell state
  T* dbeta_c = nullptr;     // [H]
};

// Forward pass. reserve == nullptr runs in inference mode and stores nothing for backward.
template <typename T>
void forward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
             const LayerOutputs<T>& out, CpuReserve<T>* reserve);

// Backpropagation through time over a reserve filled by forward() with the same inputs.
template <typename T>
void backward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
              const CpuReserve<T>& reserve, const LayerGrads<T>& grads);

}  // namespace rnnkit
