// The backend seam of the recurrent core: a backend-neutral description of one call (one
// layer, one direction) and the forward/backward entry points every backend implements.
// The CPU backend and the CUDA backend (cpp/src/cuda/) implement it, each with its own
// Reserve; Python picks the backend by where the arrays live. Callers never see a backend's buffers: what backward
// needs is a Reserve the backend allocates, fills and reads.
//
// Letters (docs/design.md): T time steps, B batch, I input features, H hidden units,
// G gates (RNN 1, GRU 3, LSTM 4), P projection width, S state width (P when projected,
// else H). Arrays are dense row-major; sequences are time-major.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "rnnkit/cells.h"

namespace rnnkit {

enum class DType { Float32, Float64 };

struct Dims {
  int64_t T = 0, B = 0, I = 0, H = 0;
  int64_t P = 0;  // output projection width; 0: no projection
  // width of h, of the outputs and of what the recurrent product reads
  int64_t state_size() const { return P > 0 ? P : H; }
};

// Normalisation inside the recurrence (docs/design.md "Normalised recurrences"): the
// products x_t @ Wx and h_{t-1} @ Wh are each normalised and scaled by a gain before the
// biases are added. Layer: each row over its G*H features; batch: each feature over the
// batch rows at the same step (the training-mode statistics; an inference-mode batch norm is
// an affine map the caller folds into the weights). eps = 1e-5, biased variance.
enum class NormKind { None, Layer, Batch };

struct NormViews {
  NormKind kind = NormKind::None;
  const void* gamma_x = nullptr;  // [G*H] gain of the normalised x_t @ Wx
  const void* gamma_h = nullptr;  // [G*H] gain of the normalised h_{t-1} @ Wh
  // [H] optional, layer norm of a cell state only: h_t = o * tanh(LN(c_t) * gamma_c + beta_c)
  const void* gamma_c = nullptr;
  const void* beta_c = nullptr;
};

// Views of a call's input arrays, elements of the call's dtype (lengths: int64). The backend
// only reads them; optional ones may be null (zeros / absent). Callers check shapes.
struct InputViews {
  const void* x = nullptr;               // [T, B, I]
  const void* h0 = nullptr;              // [B, S] optional
  const void* c0 = nullptr;              // [B, H] optional, cells with a cell state
  const void* Wx = nullptr;              // [I, G*H] input-to-hidden weights
  const void* Wh = nullptr;              // [S, G*H] hidden-to-hidden weights
  const void* b = nullptr;               // [G*H] input bias (null only when backward alone runs)
  const void* bh = nullptr;              // [G*H] optional recurrent bias
  const void* Wr = nullptr;              // [H, P] output projection, when Dims::P > 0
  const void* peepholes = nullptr;       // [3, H] p_i, p_f, p_o, when CellSpec::peepholes
  // [B] optional, 0 <= lengths[b] <= T. Host memory for every backend (the time loop's step
  // count is read from it).
  const int64_t* lengths = nullptr;
  // [B] a device backend's copy of lengths in its memory, made by the caller in its stream
  // order; null: the backend copies `lengths` itself (a pageable copy the host may wait for)
  const int64_t* lengths_device = nullptr;
  // [B, S] optional: multiplies h_{t-1} where it enters the recurrent product (variational
  // recurrent dropout). A GRU's direct path z * h_{t-1} and the carried state are not masked.
  const void* recurrent_mask = nullptr;
  NormViews norm;
};

// Everything a backend needs to know about one call.
struct CallDesc {
  CellSpec cell;
  Dims dims;
  DType dtype = DType::Float32;
  bool reverse = false;  // run each sequence from its own last valid step down to 0
  InputViews in;
  // Where a device backend runs the call: its device ordinal and the caller's stream (a
  // cudaStream_t; null is the legacy default stream). The results are ready in the caller's
  // stream order. The CPU backend ignores both.
  int device = 0;
  void* stream = nullptr;
};

struct OutputViews {
  void* y = nullptr;   // [T, B, S] outputs; zero past each sequence's length
  void* hT = nullptr;  // [B, S] state after each sequence's own last step
  void* cT = nullptr;  // [B, H] cells with a cell state
  // [4, G*H] optional, batch norm only: the mean and unbiased variance of x_t @ Wx, then of
  // h_{t-1} @ Wh, averaged over the steps with at least one valid row (what a caller's
  // running statistics are updated from)
  void* batch_stats = nullptr;
};

// Backward's gradients in and out. All results are assigned (=), never accumulated; dbh may
// be null when the layer has no bh, dc0 when the cell has no cell state, dWr and dpeepholes
// when the call has no projection or peepholes.
struct GradViews {
  const void* dy = nullptr;   // [T, B, S] optional
  const void* dhT = nullptr;  // [B, S] optional
  const void* dcT = nullptr;  // [B, H] optional
  void* dx = nullptr;         // [T, B, I]
  void* dh0 = nullptr;        // [B, S]
  void* dc0 = nullptr;        // [B, H]
  void* dWx = nullptr;        // [I, G*H]
  void* dWh = nullptr;        // [S, G*H]
  void* db = nullptr;         // [G*H]
  void* dbh = nullptr;        // [G*H]
  void* dWr = nullptr;        // [H, P]
  void* dpeepholes = nullptr; // [3, H]
  void* dgamma_x = nullptr;   // [G*H] with normalisation
  void* dgamma_h = nullptr;   // [G*H]
  void* dgamma_c = nullptr;   // [H] with a normalised cell state
  void* dbeta_c = nullptr;    // [H]
};

// What a training-mode forward keeps for backward. Opaque: only the backend that made it
// reads it, and only for a call with the same description.
class Reserve {
 public:
  virtual ~Reserve() = default;
  virtual size_t nbytes() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // Runs the forward pass. Training returns the reserve backward needs; inference stores
  // nothing and returns null.
  virtual std::unique_ptr<Reserve> forward(const CallDesc& call, const OutputViews& out,
                                           bool training) const = 0;
  // Backpropagation through time over the reserve that forward(call, ..., true) returned.
  // Throws std::invalid_argument when the reserve belongs to another backend or call shape.
  virtual void backward(const CallDesc& call, const Reserve& reserve,
                        const GradViews& grads) const = 0;
};

const Backend& cpu_backend();
// The CUDA backend (cpp/src/cuda/backend.cu): arrays in device memory. Only in the rnnkit._cuda
// module (CMake RNNKIT_CUDA=ON).
const Backend& cuda_backend();
// The CUDA backend's algorithm over host memory (cpp/src/cuda/emulation.cpp): the same time
// loops and kernels run on the CPU, for tests without a GPU (rnnkit._cuda_emulation).
const Backend& cuda_emulated_backend();

}  // namespace rnnkit
