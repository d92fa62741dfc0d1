// Time loops of the recurrent cells (docs/design.md "Kernels (CPU)"):
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
#include <functional>
#include <stdexcept>

#include "cpu/simd/kernels.h"
#include "cpu/recurrent.h"
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


// Per-thread scratch memory reused across calls. Fresh multi-megabyte buffers on every call
// cost a page fault and a zeroing pass per page (measured: ~40% of a one-step backward). A
// Scratch hands out buffers from its thread's arena in order and gives them back, LIFO, when
// it goes out of scope; contents are whatever an earlier call left (callers initialise).
// The arena keeps its largest buffers for the life of the thread.
template <typename T>
class Scratch {
 public:
  Scratch() : first_(used()) {}
  ~Scratch() { used() = first_; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  T* take(int64_t n) {
    auto& bufs = buffers();
    if (used() == bufs.size()) bufs.emplace_back();
    std::vector<T>& buf = bufs[used()++];
    if (int64_t(buf.size()) < n) buf = std::vector<T>(size_t(n));
    return buf.data();
  }
  T* take_zeroed(int64_t n) {
    T* p = take(n);
    std::fill(p, p + n, T(0));
    return p;
  }

 private:
  static std::vector<std::vector<T>>& buffers() {
    thread_local std::vector<std::vector<T>> b;
    return b;
  }
  static size_t& used() {
    thread_local size_t u = 0;
    return u;
  }
  size_t first_;
};

// Columns [c0, c0 + n) of src packed for packed_gemm in wide tiles of span = U*W columns
// (U = pack_vectors, W = pack_width: kern.tile_span()), zero past n:
// P[t][k][c % span] = src(k, c0 + c) with t = c / span, src(k, c) = trans ? B[c*ldb + k]
// : B[k*ldb + c]. Tile t starts at P + t*K*span; P holds packed_size(K, n) elements.
template <typename T>
int64_t packed_size(const PointwiseKernels<T>& kern, int64_t K, int64_t n) {
  const int64_t span = kern.tile_span();
  return (n + span - 1) / span * K * span;
}

template <typename T>
void pack_wide(const PointwiseKernels<T>& kern, const T* B, int64_t ldb, bool trans, int64_t K,
               int64_t c0, int64_t n, T* P) {
  const int64_t span = kern.tile_span();
  for (int64_t c_first = 0; c_first < n; c_first += span) {
    T* tile = P + c_first * K;  // tile c_first / span starts at (c_first / span) * K * span
    const int64_t count = std::min(span, n - c_first);
    if (count < span)
      for (int64_t k = 0; k < K; ++k) std::fill(tile + k * span + count, tile + (k + 1) * span, T(0));
    // loop orders that read B contiguously: along k when transposed, along columns otherwise
    if (trans)
      for (int64_t c = 0; c < count; ++c)
        for (int64_t k = 0; k < K; ++k) tile[k * span + c] = B[(c0 + c_first + c) * ldb + k];
    else
      for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < count; ++c) tile[k * span + c] = B[k * ldb + c0 + c_first + c];
  }
}

// Runs the jobs on the pool when the call is big enough (`work` multiply-adds) to pay for
// waking it, otherwise in order on this thread.
inline void parallel_jobs(int64_t work, const std::vector<std::function<void()>>& jobs) {
  if (work < kMinParallelWork) {
    for (const auto& job : jobs) job();
    return;
  }
  parallel_for(int64_t(jobs.size()), [&](int64_t i) { jobs[size_t(i)](); });
}

// Runs f(b0, b1) over contiguous ranges of batch rows, one per thread, when the batch is big
// enough to keep every thread's register blocks full and the call does enough work (`work`
// multiply-adds) to pay for waking the pool; otherwise on the calling thread.
template <typename F>
void parallel_rows(int64_t B, int64_t work, F&& f) {
  const int64_t parts = work < kMinParallelWork ? 1 : std::min<int64_t>(get_num_threads(), B / 8);
  if (parts <= 1) return f(0, B);
  parallel_for(parts, [&](int64_t p) { f(B * p / parts, B * (p + 1) / parts); });
}

// The time loop for batch rows [b0, b1). Per step and per tile of span hidden units: the packed
// recurrent product of the tile for all rows, then the fused gate kernel on that tile while it
// is still in cache. New states go to y first and replace h once every tile has read h.
template <typename T>
void forward_rows(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
                  const LayerOutputs<T>& out, CpuReserve<T>* reserve, const StepMap& steps, T* xw,
                  const T* bh_n, const PointwiseKernels<T>& K, const T* const* packed,
                  int64_t b0, int64_t b1) {
  const int64_t Tn = dims.T, B = dims.B, H = dims.H, G = spec.gates(), GH = G * H;
  const int64_t M = b1 - b0;
  // tiles of span hidden units: one wide tile of packed_gemm per gate block
  const int64_t span = K.tile_span(), tiles = (H + span - 1) / span;
  const bool is_gru = spec.kind == CellKind::Gru;
  const bool reset_after = is_gru && spec.linear_before_reset;
  const bool relu = spec.kind == CellKind::RnnRelu;
  const GruColumns gru = is_gru ? gru_columns(spec, H) : GruColumns{0, 0};

  Scratch<T> scratch;  // every buffer is written before it is read
  T* h = scratch.take(M * H);
  T* c = spec.has_cell_state() ? scratch.take(M * H) : nullptr;
  T* c_next = spec.has_cell_state() ? scratch.take(M * H) : nullptr;
  T* hw = scratch.take(M * GH);
  T* rh = is_gru ? scratch.take(M * H) : nullptr;
  T* hw_n = is_gru ? scratch.take(M * H) : nullptr;
  T* hn = reset_after ? scratch.take(M * H) : nullptr;
  // hr: what enters the recurrent product, h or h * recurrent_mask
  T* hr = in.recurrent_mask ? scratch.take(M * H) : h;
  for (int64_t i = 0; i < M; ++i) {
    const int64_t b = b0 + i;
    copy_row(in.h0 ? in.h0 + b * H : nullptr, h + i * H, H);
    if (spec.has_cell_state()) copy_row(in.c0 ? in.c0 + b * H : nullptr, c + i * H, H);
  }
  std::vector<int64_t> rows(M);  // xw/y row of each local row at this step, -1 when inactive

  for (int64_t s = 0; s < Tn; ++s) {
    for (int64_t i = 0; i < M; ++i)
      rows[i] = steps.active(s, b0 + i) ? steps.position(s, b0 + i) * B + b0 + i : -1;
    if (in.recurrent_mask)
      for (int64_t k = 0; k < M * H; ++k) hr[k] = h[k] * in.recurrent_mask[b0 * H + k];

    // C[:, block g, tile t] = A @ (Wh's block g, tile t)
    auto block_product = [&](const T* A, int64_t g, int64_t t, int64_t nv, T* C, int64_t ldc) {
      K.packed_gemm(A, H, M, H, packed[g] + t * H * span, nv, C, ldc, false);
    };
    if (is_gru && !reset_after) {
      // stage 1 (r, z and r * h_prev) over all tiles, then the n block's product of r * h_prev
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t j0 = t * span, nv = std::min<int64_t>(span, H - j0);
        for (int64_t g = gru.rz / H; g < gru.rz / H + 2; ++g)
          block_product(hr, g, t, nv, hw + g * H + j0, GH);
        for (int64_t i = 0; i < M; ++i) {
          if (rows[i] < 0) continue;
          T* ax = xw + rows[i] * GH + j0;
          K.gru_forward_rz(ax, hw + i * GH + j0, hr + i * H + j0, spec.gate_block, ax,
                           rh + i * H + j0, nv, H);
        }
      }
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t j0 = t * span, nv = std::min<int64_t>(span, H - j0);
        block_product(rh, gru.n / H, t, nv, hw_n + j0, H);
        for (int64_t i = 0; i < M; ++i) {
          if (rows[i] < 0) continue;
          T* ax = xw + rows[i] * GH + j0;
          K.gru_forward_n(ax, hw_n + i * H + j0, h + i * H + j0, spec.gate_block,
                          ax, out.y + rows[i] * H + j0, nv, H);
        }
      }
    } else {
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t j0 = t * span, nv = std::min<int64_t>(span, H - j0);
        for (int64_t g = 0; g < G; ++g) block_product(hr, g, t, nv, hw + g * H + j0, GH);
        for (int64_t i = 0; i < M; ++i) {
          if (rows[i] < 0) continue;
          const int64_t row = rows[i];
          T* ax = xw + row * GH + j0;
          const T* ah = hw + i * GH + j0;
          T* y = out.y + row * H + j0;
          T* gates = reserve ? ax : nullptr;
          switch (spec.kind) {
            case CellKind::RnnTanh:
            case CellKind::RnnRelu:
              K.rnn_forward(ax, ah, relu, y, nv);
              break;
            case CellKind::Lstm: {
              T* c_out = reserve ? reserve->cells.data() + row * H + j0 : c_next + i * H + j0;
              K.lstm_forward(ax, ah, c + i * H + j0, spec.gate_block, gates, c_out, y, nv, H);
              break;
            }
            case CellKind::Gru:
              K.gru_forward(ax, ah, bh_n ? bh_n + j0 : nullptr, h + i * H + j0,
                            spec.gate_block, gates,
                            (reserve ? reserve->extra.data() + row * H : hn + i * H) + j0,
                            y, nv, H);
              break;
          }
        }
      }
    }

    // every tile has read h: the new states replace it
    for (int64_t i = 0; i < M; ++i) {
      if (rows[i] < 0) continue;
      const int64_t row = rows[i];
      std::memcpy(h + i * H, out.y + row * H, sizeof(T) * H);
      if (spec.has_cell_state())
        std::memcpy(c + i * H,
                    reserve ? reserve->cells.data() + row * H : c_next + i * H, sizeof(T) * H);
      if (reserve) std::memcpy(reserve->states.data() + row * H, out.y + row * H, sizeof(T) * H);
      if (reserve && is_gru && !reset_after)
        std::memcpy(reserve->extra.data() + row * H, rh + i * H, sizeof(T) * H);
    }
  }
  for (int64_t i = 0; i < M; ++i) {
    if (out.hT) std::memcpy(out.hT + (b0 + i) * H, h + i * H, sizeof(T) * H);
    if (out.cT && spec.has_cell_state())
      std::memcpy(out.cT + (b0 + i) * H, c + i * H, sizeof(T) * H);
  }
}

}  // namespace

template <typename T>
void forward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
             const LayerOutputs<T>& out, CpuReserve<T>* reserve) {
  const int64_t Tn = dims.T, B = dims.B, I = dims.I, H = dims.H;
  const int64_t G = spec.gates(), GH = G * H;
  // the kernel table is read once per call: the packed layout must match its kernels even if
  // another thread switches the ISA meanwhile
  const PointwiseKernels<T>& K = kernels<T>();
  const StepMap steps{in.lengths, Tn, in.reverse};
  const bool uniform = steps.uniform(B);
  const bool is_gru = spec.kind == CellKind::Gru;
  const bool reset_after = is_gru && spec.linear_before_reset;
  const GruColumns gru = is_gru ? gru_columns(spec, H) : GruColumns{0, 0};

  // 1. input projection; in training (LSTM, GRU) it becomes the gate reserve: the kernels
  // write the activations in place. A vanilla RNN's backward needs only its states.
  Scratch<T> scratch;
  const bool keeps_gates = reserve && spec.gates() > 1;
  if (reserve) {
    reserve->dims = dims;
    reserve->spec = spec;
    reserve->gates.assign(keeps_gates ? Tn * B * GH : 0, T(0));
    reserve->states.assign(Tn * B * H, T(0));
    reserve->cells.assign(spec.has_cell_state() ? Tn * B * H : 0, T(0));
    reserve->extra.assign(is_gru ? Tn * B * H : 0, T(0));
  }
  T* xw = keeps_gates ? reserve->gates.data() : scratch.take(Tn * B * GH);
  // Both biases add to the pre-activation, except a reset-after GRU's bh_n, which the reset
  // gate multiplies: it is passed to the kernel instead.
  std::vector<T> bias(in.b, in.b + GH);
  if (in.bh)
    for (int64_t k = 0; k < GH; ++k)
      if (!(reset_after && k >= gru.n && k < gru.n + H)) bias[k] += in.bh[k];
  // Packing Wh (per gate block) and filling xw with the bias rows run in parallel: serial,
  // they were ~5% of a 2-thread call at 35x20x650x650.
  const T* packed[4];  // Wh's column block g, packed
  std::vector<std::function<void()>> jobs;
  for (int64_t g = 0; g < G; ++g) {
    T* P = scratch.take(packed_size(K, H, H));
    packed[g] = P;
    jobs.push_back([&, g, P] { pack_wide(K, in.Wh, GH, false, H, g * H, H, P); });
  }
  const int64_t parts = get_num_threads(), rows = Tn * B;
  for (int64_t part = 0; part < parts; ++part)
    jobs.push_back([&, part] {
      for (int64_t r = rows * part / parts; r < rows * (part + 1) / parts; ++r)
        std::memcpy(xw + r * GH, bias.data(), sizeof(T) * GH);
    });
  parallel_jobs(Tn * B * H * GH, jobs);
  gemm<T>(false, false, Tn * B, GH, I, T(1), in.x, I, in.Wx, GH, T(1), xw, GH);

  // 2. the sequential loop, over packed recurrent weights; batch rows are independent, so
  // row ranges run on separate threads with no synchronisation between steps
  if (!uniform) std::fill(out.y, out.y + Tn * B * H, T(0));
  const T* bh_n = (reset_after && in.bh) ? in.bh + gru.n : nullptr;
  parallel_rows(B, Tn * B * H * GH, [&](int64_t b0, int64_t b1) {
    forward_rows(spec, dims, in, out, reserve, steps, xw, bh_n, K, packed, b0, b1);
  });
}

template <typename T>
void backward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
              const CpuReserve<T>& reserve, const LayerGrads<T>& g) {
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
  // Every position is written when all rows have the full length; otherwise the padded ones
  // must read as zeros in the GEMMs below.
  Scratch<T> scratch;
  auto shared = [&](int64_t n) { return uniform ? scratch.take(n) : scratch.take_zeroed(n); };
  T* dA = shared(rows * GH);
  T* dax_n = reset_after ? shared(rows * H) : nullptr;
  T* h_prev_all = shared(rows * H);  // h_{t-1} of every position, for dWh
  // Wh^T packed once per call in wide tiles (one broadcast of dA feeds several FMAs); the
  // reset-before GRU packs its n block and its r,z blocks separately.
  const int64_t span = K.tile_span(), tiles = (H + span - 1) / span;
  // the packing runs as parallel jobs, each a range of whole tiles
  const bool split_n = is_gru && !reset_after;
  T* packed_main = scratch.take(packed_size(K, split_n ? 2 * H : GH, H));
  T* packed_n = split_n ? scratch.take(packed_size(K, H, H)) : nullptr;
  const int64_t half = (H + span - 1) / span / 2 * span;  // units in the first half's tiles
  std::vector<std::function<void()>> jobs;
  auto pack_halves = [&](const T* src, int64_t K_dim, T* P) {
    jobs.push_back([=, &K] { pack_wide(K, src, GH, true, K_dim, 0, half, P); });
    jobs.push_back([=, &K] { pack_wide(K, src, GH, true, K_dim, half, H - half, P + half * K_dim); });
  };
  if (split_n) {
    pack_halves(in.Wh + gru.rz, 2 * H, packed_main);
    pack_halves(in.Wh + gru.n, H, packed_n);
  } else {
    pack_halves(in.Wh, GH, packed_main);
  }
  parallel_jobs(Tn * B * H * GH, jobs);
  const T* mask = in.recurrent_mask;

  // The reverse loop for batch rows [b0, b1) (rows are independent: threads share nothing
  // but the disjoint rows of dA, dax_n and h_prev_all they write).
  auto reverse_loop = [&](int64_t b0, int64_t b1) {
    const int64_t M = b1 - b0;
    // dh_direct: gradient reaching h_{t-1} past the recurrent product (a GRU's z * h_{t-1});
    // d_hr: gradient w.r.t. the recurrent product's input (h_{t-1}, times the mask if any);
    Scratch<T> local;  // every buffer is written before it is read
    T* dh = local.take(M * H);
    T* dc = spec.has_cell_state() ? local.take(M * H) : nullptr;
    T* dh_direct = is_gru ? local.take(M * H) : nullptr;
    T* d_hr = local.take(M * H);
    T* dA_scratch = uniform ? nullptr : local.take(M * GH);
    T* d_rh = is_gru ? local.take(M * H) : nullptr;
    std::vector<T> dh_total(H), hr_row(H);
    // C [M, H] (+)= dA columns [M, K] @ (the matching Wh columns)^T
    auto transposed_product = [&](const T* dA_cols, int64_t K_dim, const T* P,
                                  T* C, bool accumulate) {
      for (int64_t t = 0; t < tiles; ++t)
        K.packed_gemm(dA_cols, GH, M, K_dim, P + t * K_dim * span,
                      std::min<int64_t>(span, H - t * span), C + t * span, H, accumulate);
    };
    for (int64_t i = 0; i < M; ++i) {
      const int64_t b = b0 + i;
      copy_row(g.dhT ? g.dhT + b * H : nullptr, dh + i * H, H);
      if (spec.has_cell_state()) copy_row(g.dcT ? g.dcT + b * H : nullptr, dc + i * H, H);
    }

    for (int64_t s = Tn - 1; s >= 0; --s) {
      T* dA_step = uniform ? dA + (steps.position(s, 0) * B + b0) * GH : dA_scratch;
      if (!uniform) std::fill(dA_scratch, dA_scratch + M * GH, T(0));

      for (int64_t i = 0; i < M; ++i) {
        const int64_t b = b0 + i;
        if (!steps.active(s, b)) continue;
        const int64_t t = steps.position(s, b), row = t * B + b;
        const T* h_prev = s == 0 ? (in.h0 ? in.h0 + b * H : nullptr)
                                 : reserve.states.data() + (steps.position(s - 1, b) * B + b) * H;
        copy_row(h_prev, h_prev_all + row * H, H);
        for (int64_t j = 0; j < H; ++j)
          dh_total[j] = dh[i * H + j] + (g.dy ? g.dy[row * H + j] : T(0));
        const T* gates = spec.gates() > 1 ? reserve.gates.data() + row * GH : nullptr;
        T* da = dA_step + i * GH;
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
                            dc + i * H, spec.gate_block, da, dc + i * H, H, H);
            break;
          }
          case CellKind::Gru:
            if (reset_after)
              K.gru_backward(gates, reserve.extra.data() + row * H, h_prev, dh_total.data(),
                             spec.gate_block, da, dax_n + row * H,
                             dh_direct + i * H, H, H);
            else
              K.gru_backward_zn(gates, h_prev, dh_total.data(), spec.gate_block, da,
                                dh_direct + i * H, H, H);
            break;
        }
      }

      if (is_gru && !reset_after) {
        transposed_product(dA_step + gru.n, H, packed_n, d_rh, false);
        for (int64_t i = 0; i < M; ++i) {
          const int64_t b = b0 + i;
          if (!steps.active(s, b)) continue;
          const int64_t row = steps.position(s, b) * B + b;
          const T* h_in = h_prev_all + row * H;
          if (mask) {
            for (int64_t j = 0; j < H; ++j) hr_row[j] = h_in[j] * mask[b * H + j];
            h_in = hr_row.data();
          }
          K.gru_backward_r(reserve.gates.data() + row * GH, h_in, d_rh + i * H,
                           spec.gate_block, dA_step + i * GH, d_hr + i * H, H, H);
        }
        transposed_product(dA_step + gru.rz, 2 * H, packed_main, d_hr, true);
      } else {
        transposed_product(dA_step, GH, packed_main, d_hr, false);
      }

      for (int64_t i = 0; i < M; ++i) {
        const int64_t b = b0 + i;
        if (!steps.active(s, b)) continue;  // rows past their length pass dh through unchanged
        for (int64_t j = 0; j < H; ++j) {
          const T d = d_hr[i * H + j];
          dh[i * H + j] = (is_gru ? dh_direct[i * H + j] : T(0)) + (mask ? mask[b * H + j] * d : d);
        }
        if (!uniform)
          std::memcpy(dA + (steps.position(s, b) * B + b) * GH, dA_step + i * GH,
                      sizeof(T) * GH);
      }
    }
    if (g.dh0) std::memcpy(g.dh0 + b0 * H, dh, sizeof(T) * M * H);
    if (g.dc0 && spec.has_cell_state()) std::memcpy(g.dc0 + b0 * H, dc, sizeof(T) * M * H);
  };
  parallel_rows(B, Tn * B * H * GH, reverse_loop);

  // 3. weight, bias and input gradients as GEMMs over all T*B rows; Wh saw h_{t-1} * mask
  if (mask)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < H; ++j) h_prev_all[r * H + j] *= mask[(r % B) * H + j];
  if (!reset_after) {
    gemm<T>(true, false, I, GH, rows, T(1), in.x, I, dA, GH, T(0), g.dWx, GH);
    gemm<T>(false, true, rows, I, GH, T(1), dA, GH, in.Wx, GH, T(0), g.dx, I);
    column_sums(dA, rows, GH, GH, g.db);
    if (g.dbh) std::memcpy(g.dbh, g.db, sizeof(T) * GH);
    if (is_gru) {  // reset before: the n block multiplies r * h_prev, not h_prev
      gemm<T>(true, false, H, 2 * H, rows, T(1), h_prev_all, H, dA + gru.rz, GH,
              T(0), g.dWh + gru.rz, GH);
      gemm<T>(true, false, H, H, rows, T(1), reserve.extra.data(), H, dA + gru.n, GH,
              T(0), g.dWh + gru.n, GH);
    } else {
      gemm<T>(true, false, H, GH, rows, T(1), h_prev_all, H, dA, GH, T(0), g.dWh, GH);
    }
  } else {
    gemm<T>(true, false, H, GH, rows, T(1), h_prev_all, H, dA, GH, T(0), g.dWh, GH);
    gemm<T>(true, false, I, 2 * H, rows, T(1), in.x, I, dA + gru.rz, GH, T(0),
            g.dWx + gru.rz, GH);
    gemm<T>(true, false, I, H, rows, T(1), in.x, I, dax_n, H, T(0), g.dWx + gru.n, GH);
    gemm<T>(false, true, rows, I, 2 * H, T(1), dA + gru.rz, GH, in.Wx + gru.rz, GH, T(0),
            g.dx, I);
    gemm<T>(false, true, rows, I, H, T(1), dax_n, H, in.Wx + gru.n, GH, T(1), g.dx, I);
    column_sums(dA + gru.rz, rows, 2 * H, GH, g.db + gru.rz);
    column_sums(dax_n, rows, H, H, g.db + gru.n);
    if (g.dbh) column_sums(dA, rows, GH, GH, g.dbh);
  }
}

template void forward<float>(const CellSpec&, const Dims&, const LayerInputs<float>&,
                             const LayerOutputs<float>&, CpuReserve<float>*);
template void forward<double>(const CellSpec&, const Dims&, const LayerInputs<double>&,
                              const LayerOutputs<double>&, CpuReserve<double>*);
template void backward<float>(const CellSpec&, const Dims&, const LayerInputs<float>&,
                              const CpuReserve<float>&, const LayerGrads<float>&);
template void backward<double>(const CellSpec&, const Dims&, const LayerInputs<double>&,
                               const CpuReserve<double>&, const LayerGrads<double>&);

}  // namespace rnnkit
