// Time loops of the recurrent cells (docs/design.md "Kernels (CPU)"):
//  1. one GEMM projects the inputs of all steps: XW = x @ Wx + biases, [T*B, G*H];
//  2. per step, one GEMM h_{t-1} @ Wh followed by the fused pointwise gate kernel of the
//     active ISA, row by row, storing what backward needs in the reserve (training only);
//  3. backward runs the steps in reverse producing the gate gradients dA_t and
//     dh_{t-1} = dA_t @ Wh^T; the weight gradients are then large GEMMs over all steps.
// With an output projection (Dims::P > 0) each step also multiplies the cell's output m_t by
// Wr (h_t = m_t @ Wr, S = P wide), and backward first takes dm_t = dh_t @ Wr^T.
//
// The loops are written once, over a cell policy (cpu/cells/*.h: stages, reserve layout, the
// pointwise kernels of a step forward and backward); registry.h picks the policy per call.
//
// Steps and positions: step s of batch row b processes time position
// t = s (forward) or t = length_b - 1 - s (reverse), and only while s < length_b. Rows past
// their length keep their state, so final states are those after each row's own last step.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <new>
#include <stdexcept>

#include "cpu/cells/registry.h"
#include "cpu/normalization.h"
#include "cpu/recurrent.h"
#include "input_side.h"
#include "cpu/simd/kernels.h"
#include "rnnkit/runtime.h"

namespace rnnkit {
namespace {
using cpu::add_column_products;
using cpu::BackwardRow;
using cpu::batch_norm_backward;
using cpu::batch_norm_forward;
using cpu::BlockRange;
using cpu::ForwardTile;
using cpu::with_cell_policy;

struct StepMap {
  const int64_t* lengths;
  int64_t T;
  bool reverse;

  int64_t length(int64_t b) const { return lengths ? lengths[b] : T; }
  bool active(int64_t s, int64_t b) const { return s < length(b); }
  int64_t position(int64_t s, int64_t b) const { return reverse ? length(b) - 1 - s : s; }
  // row of batch row b at step s in a [T*B, .] buffer indexed by position; -1 past its length
  int64_t row(int64_t s, int64_t b, int64_t B) const {
    return active(s, b) ? position(s, b) * B + b : -1;
  }
  // position of step s when every row has the full length (reads no lengths: B may be 0)
  int64_t uniform_position(int64_t s) const { return reverse ? T - 1 - s : s; }
  // true when every row has the full length, so a step touches one contiguous [B, .] slab
  bool uniform(int64_t B) const {
    if (!lengths) return true;
    for (int64_t b = 0; b < B; ++b)
      if (lengths[b] != T) return false;
    return true;
  }
};

// memcpy of n elements. n may be 0 with null pointers (the empty buffers of H = 0, which a
// std::vector hands out as null), where memcpy itself would be undefined (UBSan).
template <typename T>
void copy_n(T* dst, const T* src, int64_t n) {
  if (n > 0) std::memcpy(dst, src, sizeof(T) * size_t(n));
}

template <typename T>
void copy_row(const T* src, T* dst, int64_t n) {
  if (src) copy_n(dst, src, n);
  else std::fill(dst, dst + n, T(0));
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
// The arena keeps its largest buffers until its thread exits or release_scratch_memory()
// asks for them back (scratch_bytes() counts what every thread's arenas hold).
std::atomic<int64_t> g_scratch_bytes{0};
std::atomic<uint64_t> g_release_epoch{0};  // bumped by release_scratch_memory()
std::atomic<int64_t> g_fail_countdown{0};  // test hook: inject_allocation_failure()
std::atomic<bool> g_fail_workers_only{false};

template <typename T>
struct Arena {
  std::vector<std::vector<T>> buffers;
  size_t used = 0;          // buffers handed out by the live Scratch objects of this thread
  uint64_t epoch = g_release_epoch.load();
  int64_t bytes = 0;        // capacity held, counted in g_scratch_bytes

  ~Arena() { g_scratch_bytes -= bytes; }
  void clear() {
    buffers = {};
    g_scratch_bytes -= bytes;
    bytes = 0;
  }
};

template <typename T>
class Scratch {
 public:
  Scratch() : arena_(arena()), first_(arena_.used) {
    // the outermost Scratch of a call frees what the arena held before a release was asked for
    if (first_ == 0 && arena_.epoch != g_release_epoch.load()) {
      arena_.clear();
      arena_.epoch = g_release_epoch.load();
    }
  }
  ~Scratch() { arena_.used = first_; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;

  T* take(int64_t n) {
    if (g_fail_countdown.load(std::memory_order_relaxed) > 0 &&
        (!g_fail_workers_only || on_pool_worker()) && g_fail_countdown.fetch_sub(1) == 1)
      throw std::bad_alloc();  // the allocation failure a test asked for
    auto& bufs = arena_.buffers;
    if (arena_.used == bufs.size()) bufs.emplace_back();
    std::vector<T>& buf = bufs[arena_.used++];
    if (int64_t(buf.size()) < n) {
      const int64_t before = int64_t(buf.capacity() * sizeof(T));
      buf = std::vector<T>();  // free first: old and new need not both fit
      arena_.bytes -= before;
      g_scratch_bytes -= before;
      buf = std::vector<T>(size_t(n));
      const int64_t after = int64_t(buf.capacity() * sizeof(T));
      arena_.bytes += after;
      g_scratch_bytes += after;
    }
    return buf.data();
  }
  T* take_zeroed(int64_t n) {
    T* p = take(n);
    std::fill(p, p + n, T(0));
    return p;
  }

 private:
  static Arena<T>& arena() {
    thread_local Arena<T> a;
    return a;
  }
  Arena<T>& arena_;
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

// Runs f(i0, i1) over contiguous ranges of [0, n) (batch rows, position rows or feature
// columns), one per thread, when each range gets at least 8 (a batch: enough rows to keep
// every thread's register blocks full) and the call does enough work (`work` multiply-adds)
// to pay for waking the pool; otherwise on the calling thread.
template <typename F>
void parallel_ranges(int64_t n, int64_t work, F&& f) {
  const int64_t parts = work < kMinParallelWork ? 1 : std::min<int64_t>(get_num_threads(), n / 8);
  if (parts <= 1) return f(0, n);
  parallel_for(parts, [&](int64_t p) { f(n * p / parts, n * (p + 1) / parts); });
}

// Step s's active rows in two [T*B, width] buffers indexed by position: those of `a` into
// a_rows, those of `hat` (unless null) into hat_rows.
template <typename A, typename Hat>
void step_rows(const StepMap& steps, int64_t s, int64_t B, int64_t width, A* a, Hat* hat,
               std::vector<A*>& a_rows, std::vector<Hat*>& hat_rows) {
  a_rows.clear();
  hat_rows.clear();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t row = steps.row(s, b, B);
    if (row < 0) continue;
    a_rows.push_back(a + row * width);
    if (hat) hat_rows.push_back(hat + row * width);
  }
}

// A batch norm of the columns [c0, c0 + F) of the input projection xw ([T*B, G*H], x @ Wx) in
// place, per step over its active rows; keeps the normalised rows and rstd in the reserve and
// adds the steps' statistics to stats[0, 2*G*H) (means, then variances).
template <typename T>
void batch_norm_inputs(const LayerNorm<T>& norm, const StepMap& steps, int64_t B, int64_t GH,
                       int64_t c0, int64_t F, T* xw, CpuReserve<T>* reserve, T* stats) {
  std::vector<T> scratch(size_t(F + GH));  // the step's means; rstd when nothing is kept
  std::vector<T*> rows, hats;
  for (int64_t s = 0; s < steps.T; ++s) {
    step_rows(steps, s, B, GH, xw, reserve ? reserve->norm_x.data() : nullptr, rows, hats);
    T* rstd = reserve ? reserve->rstd_x.data() + s * GH : scratch.data() + F;
    batch_norm_forward(rows, hats, c0, F, norm.gamma_x, rstd, scratch.data(),
                       stats ? stats : nullptr, stats ? stats + GH : nullptr);
  }
}

// The normalisation of the input projection xw ([T*B, G*H], x @ Wx), in place, then the
// biases: a layer norm over every position row, a batch norm per step over its active rows.
// Keeps the normalised rows and rstd in the reserve; a batch norm adds its steps' statistics
// to stats[0, 2*G*H).
template <typename T>
void normalize_inputs(const PointwiseKernels<T>& K, const LayerNorm<T>& norm,
                      const StepMap& steps, int64_t B, int64_t GH, const T* bias, T* xw,
                      CpuReserve<T>* reserve, T* stats) {
  const int64_t Tn = steps.T;
  if (norm.kind == NormKind::Layer) {
    parallel_ranges(Tn * B, Tn * B * GH * 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        T* hat = reserve ? reserve->norm_x.data() + r * GH : nullptr;
        const T rstd = K.layer_norm(xw + r * GH, norm.gamma_x, bias, GH, hat);  // bias as shift
        if (reserve) reserve->rstd_x[size_t(r)] = rstd;
      }
    });
    return;
  }
  batch_norm_inputs(norm, steps, B, GH, 0, GH, xw, reserve, stats);
  for (int64_t r = 0; r < Tn * B; ++r)
    for (int64_t k = 0; k < GH; ++k) xw[r * GH + k] += bias[k];
}

// A team splitting the hidden units of a small batch (forward_with, backward_with): member
// `member` of `members` computes the tiles [first_tile, end_tile) of every row. What every
// member's product reads whole is shared and double-buffered, so a member may write the next
// step's while the others still read this step's: the state h in forward (step s reads
// shared[s % 2], each member writes its own units of shared[(s + 1) % 2]), the gate
// gradients of a step in a backward with lengths.
template <typename T>
struct UnitTeam {
  int member, members;
  TeamBarrier* barrier;
  T* shared[2];
  T* shared_norm[2];  // a normalised backward with lengths: the product gradients, likewise
  // the member's tiles [first_tile, end_tile) of `tiles`
  int64_t first_tile(int64_t tiles) const { return tiles * member / members; }
  int64_t end_tile(int64_t tiles) const { return tiles * (member + 1) / members; }
};

// The forward time loop of policy P for batch rows [b0, b1), all hidden units or a team
// member's. Per step, per stage of P and per tile of span hidden units: the packed recurrent
// products of the stage's gate blocks for all rows, then P's pointwise math on that tile while
// it is still in cache. New states go to y first and replace h once every tile has read h.
template <class P, typename T>
void forward_rows(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
                  const LayerOutputs<T>& out, CpuReserve<T>* reserve, const StepMap& steps,
                  T* xw, const T* unfolded_bias, const PointwiseKernels<T>& K,
                  const T* const* packed, const T* packed_Wr, int64_t b0, int64_t b1,
                  const UnitTeam<T>* team = nullptr) {
  const int64_t Tn = dims.T, B = dims.B, H = dims.H, S = dims.state_size(), GH = P::kGates * H;
  const int64_t M = b1 - b0;
  const bool projected = dims.P > 0;
  // tiles of span hidden units: one wide tile of packed_gemm per gate block
  const int64_t span = K.tile_span(), tiles = (H + span - 1) / span;
  const int64_t tile0 = team ? team->first_tile(tiles) : 0;
  const int64_t tile1 = team ? team->end_tile(tiles) : tiles;
  // the units this call owns: whole rows of h (S wide) and c (H wide), or its tiles' (a team
  // runs unprojected cells: S = H)
  const int64_t u0 = team ? tile0 * span : 0, u1 = team ? std::min(tile1 * span, H) : S;
  const int64_t c_units = team ? u1 - u0 : H;
  BlockRange stage_blocks[P::kStages];
  for (int stage = 0; stage < P::kStages; ++stage) stage_blocks[stage] = P::stage_blocks(spec, stage);

  Scratch<T> scratch;  // every buffer is written before it is read
  T* h = team ? team->shared[0] : scratch.take(M * S);
  T* c = P::kCellState ? scratch.take(M * H) : nullptr;
  T* c_next = P::kCellState && !reserve ? scratch.take(M * H) : nullptr;
  T* hw = scratch.take(M * GH);
  T* stage_out = P::kStages > 1 ? scratch.take(M * H) : nullptr;
  T* extra = P::kExtra && !reserve ? scratch.take(M * H) : nullptr;
  // hr: what enters the recurrent product, h or h * recurrent_mask
  T* hr = in.recurrent_mask ? scratch.take(M * S) : h;
  // projected: the cell's outputs m, and h_new = m @ Wr, for all rows of a step
  T* m = projected ? scratch.take(M * H) : nullptr;
  T* h_new = projected ? scratch.take(M * S) : nullptr;
  for (int64_t i = 0; i < M; ++i) {
    const int64_t b = b0 + i;
    if (!team) copy_row(in.h0 ? in.h0 + b * S : nullptr, h + i * S, S);  // a team's is ready
    if (P::kCellState) copy_row(in.c0 ? in.c0 + b * H : nullptr, c + i * H, H);
  }
  std::vector<int64_t> rows(M);  // xw/y row of each local row at this step, -1 when inactive

  // Normalisation of the recurrent products hw of step s, in place, before the biases (which
  // the pointwise kernels add with ax); keeps what backward needs in the reserve.
  const LayerNorm<T>& norm = in.norm;
  T* norm_mean = norm.kind == NormKind::Batch ? scratch.take(2 * GH) : nullptr;
  T* cell_scratch = norm.cell() ? scratch.take(H) : nullptr;
  T* chat_scratch = norm.cell() && !reserve ? scratch.take(H) : nullptr;
  std::vector<T*> step_rows, step_hats;
  auto normalize_products = [&](int64_t s, const std::vector<int64_t>& rows) {
    if (norm.kind == NormKind::Layer) {
      for (int64_t i = 0; i < M; ++i) {
        if (rows[i] < 0) continue;
        T* hat = reserve ? reserve->norm_h.data() + rows[i] * GH : nullptr;
        const T rstd = K.layer_norm(hw + i * GH, norm.gamma_h, nullptr, GH, hat);
        if (reserve) reserve->rstd_h[size_t(rows[i])] = rstd;
      }
      return;
    }
    // batch: each feature over the rows active at this step (this call has every row:
    // forward_with), the columns of this call's units
    step_rows.clear();
    step_hats.clear();
    for (int64_t i = 0; i < M; ++i) {
      if (rows[i] < 0) continue;
      step_rows.push_back(hw + i * GH);
      if (reserve) step_hats.push_back(reserve->norm_h.data() + rows[i] * GH);
    }
    T* rstd = reserve ? reserve->rstd_h.data() + s * GH : norm_mean + GH;
    T* stats = out.batch_stats;
    for (int64_t g = 0; g < P::kGates; ++g)
      batch_norm_forward(step_rows, step_hats, g * H + u0, u1 - u0, norm.gamma_h, rstd, norm_mean,
                         stats ? stats + 2 * GH : nullptr, stats ? stats + 3 * GH : nullptr);
  };

  for (int64_t s = 0; s < Tn; ++s) {
    if (team) h = team->shared[s % 2];
    T* h_next = team ? team->shared[(s + 1) % 2] : h;  // alone, every tile has read h when it changes
    if (!in.recurrent_mask) hr = h;
    for (int64_t i = 0; i < M; ++i)
      rows[i] = steps.row(s, b0 + i, B);
    if (in.recurrent_mask)
      for (int64_t k = 0; k < M * S; ++k) hr[k] = h[k] * in.recurrent_mask[b0 * S + k];

    for (int stage = 0; stage < P::kStages; ++stage) {
      const T* A = stage == 0 ? hr : stage_out;
      const BlockRange blocks = stage_blocks[stage];
      // hw[:, block g, tile t] = A @ (Wh's block g, tile t)
      auto products = [&](int64_t t) {
        const int64_t j0 = t * span, nv = std::min<int64_t>(span, H - j0);
        for (int64_t g = blocks.first; g < blocks.first + blocks.count; ++g)
          K.packed_gemm(A, S, M, S, packed[g] + t * S * span, nv, hw + g * H + j0, GH, false);
      };
      auto pointwise = [&](int64_t t) {
        const int64_t j0 = t * span, nv = std::min<int64_t>(span, H - j0);
        for (int64_t i = 0; i < M; ++i) {
          if (rows[i] < 0) continue;
          const int64_t row = rows[i];
          ForwardTile<T> tile;
          tile.ax = xw + row * GH + j0;
          tile.ah = hw + i * GH + j0;
          // a normalised cell state's output reads o after the tiles: keep the gates
          tile.gates = reserve || norm.cell() ? tile.ax : nullptr;
          // h_prev and h_in are H wide here: only cells that cannot be projected read them
          tile.h_prev = h + i * S + j0;
          tile.h_in = hr + i * S + j0;
          tile.c_prev = P::kCellState ? c + i * H + j0 : nullptr;
          tile.c = P::kCellState ? (reserve ? reserve->cells.data() + row * H : c_next + i * H) + j0
                                 : nullptr;
          tile.extra = P::kExtra ? (reserve ? reserve->extra.data() + row * H : extra + i * H) + j0
                                 : nullptr;
          tile.stage_out = stage_out ? stage_out + i * H + j0 : nullptr;
          tile.bias = unfolded_bias ? unfolded_bias + j0 : nullptr;
          tile.peep = P::kPeepholes ? in.peepholes + j0 : nullptr;
          tile.h = projected ? m + i * H + j0 : out.y + row * H + j0;
          tile.block = spec.gate_block;
          tile.n = nv;
          tile.gs = H;
          P::forward_tile(K, stage, tile);
        }
      };
      if (!norm.on()) {
        // each tile's pointwise math right after its products, while they are in cache
        for (int64_t t = tile0; t < tile1; ++t) {
          products(t);
          pointwise(t);
        }
      } else {
        // the normalisation reads whole rows of products (one stage: checked by forward)
        for (int64_t t = tile0; t < tile1; ++t) products(t);
        normalize_products(s, rows);
        for (int64_t t = tile0; t < tile1; ++t) pointwise(t);
      }
    }
    if constexpr (P::kNormalizableCell) {
      if (norm.cell())  // h_t = o * tanh(LN(c_t) * gamma_c + beta_c), over whole rows
        for (int64_t i = 0; i < M; ++i) {
          if (rows[i] < 0) continue;
          const int64_t row = rows[i];
          const T* c_row = reserve ? reserve->cells.data() + row * H : c_next + i * H;
          T* chat = reserve ? reserve->norm_c.data() + row * H : chat_scratch;
          const T rstd = P::normalized_output(K, xw + row * GH, c_row, spec.gate_block,
                                              norm.gamma_c, norm.beta_c, chat,
                                              out.y + row * S, cell_scratch, H);
          if (reserve) reserve->rstd_c[size_t(row)] = rstd;
        }
    }

    if (projected) {
      // h_t = m_t @ Wr for every row at once, then into the rows' outputs
      const int64_t state_tiles = (S + span - 1) / span;
      for (int64_t t = 0; t < state_tiles; ++t)
        K.packed_gemm(m, H, M, H, packed_Wr + t * H * span, std::min<int64_t>(span, S - t * span),
                      h_new + t * span, S, false);
      for (int64_t i = 0; i < M; ++i) {
        if (rows[i] < 0) continue;
        copy_n(out.y + rows[i] * S, h_new + i * S, S);
        if (reserve)
          copy_n(reserve->unprojected.data() + rows[i] * H, m + i * H, H);
      }
    }

    // the new states of this call's units replace the old ones (units [u0, u1): S wide alone)
    const int64_t n = u1 - u0;
    for (int64_t i = 0; i < M; ++i) {
      if (rows[i] < 0) {  // a row past its length keeps its state
        if (h_next != h) copy_n(h_next + i * S + u0, h + i * S + u0, n);
        continue;
      }
      const int64_t row = rows[i];
      copy_n(h_next + i * S + u0, out.y + row * S + u0, n);
      if (P::kCellState)
        copy_n(c + i * H + u0, (reserve ? reserve->cells.data() + row * H : c_next + i * H) + u0,
               c_units);
      if (reserve) copy_n(reserve->states.data() + row * S + u0, out.y + row * S + u0, n);
      if (P::kExtraIsStageInput && reserve)
        copy_n(reserve->extra.data() + row * H, stage_out + i * H, H);
    }
    if (team) team->barrier->wait();  // every member's units of h_next are written
    h = h_next;
  }
  for (int64_t i = 0; i < M; ++i) {
    if (out.hT) copy_n(out.hT + (b0 + i) * S + u0, h + i * S + u0, u1 - u0);
    if (P::kCellState && out.cT) copy_n(out.cT + (b0 + i) * H + u0, c + i * H + u0, c_units);
  }
}

// How many threads split the hidden units of a loop (1: none). A team pays a barrier per
// step, so it runs only where rows cannot be split (parallel_ranges wants 8 rows a thread; a
// batch norm's statistics need every row of a step) and a step's product is large enough
// (2^15 multiply-adds: a batch-1 LSTM with H = 128 has 2^16), on cells whose step reads
// nothing across units but h: one stage, no projection, no layer norm.
template <class P, typename T>
int unit_team_size(const Dims& dims, const LayerInputs<T>& in, int64_t work, int64_t span) {
  // no more members than cores: a member waiting at the barrier for one that has no core
  // spins through its time slice
  const int64_t threads = std::min(get_num_threads(), default_num_threads());
  const int64_t GH = P::kGates * dims.H, tiles = (dims.H + span - 1) / span;
  if (threads <= 1 || P::kStages != 1 || dims.P > 0 || in.norm.kind == NormKind::Layer ||
      dims.B * dims.H * GH < (int64_t(1) << 15) || work < kMinParallelWork / 16)
    return 1;
  // a batch norm's statistics of a step need every row: its loops never split rows
  if (dims.B / 8 >= 2 && in.norm.kind != NormKind::Batch) return 1;
  return int(std::min(threads, tiles));
}

template <class P, typename T>
void forward_with(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
                  const LayerOutputs<T>& out, CpuReserve<T>* reserve) {
  const int64_t Tn = dims.T, B = dims.B, I = dims.I, H = dims.H, S = dims.state_size();
  const int64_t G = P::kGates, GH = G * H;
  // the kernel table is read once per call: the packed layout must match its kernels even if
  // another thread switches the ISA meanwhile
  const PointwiseKernels<T>& K = kernels<T>();
  const StepMap steps{in.lengths, Tn, in.reverse};
  const bool uniform = steps.uniform(B);
  for (int stage = 0; stage < P::kStages; ++stage) P::stage_blocks(spec, stage);  // checks the gate order

  // a small batch's loop runs as a team (below): the workers wake during the serial set-up
  const int team_size = unit_team_size<P>(dims, in, Tn * B * H * GH, K.tile_span());
  if (team_size > 1) wake_pool();

  // 1. input projection; in training it becomes the gate reserve when backward needs the
  // gates (the kernels write the activations in place)
  Scratch<T> scratch;
  const bool keeps_gates = reserve && P::kKeepsGates;
  if (reserve) {
    reserve->dims = dims;
    reserve->spec = spec;
    reserve->gates.assign(keeps_gates ? Tn * B * GH : 0, T(0));
    reserve->states.assign(Tn * B * S, T(0));
    reserve->cells.assign(P::kCellState ? Tn * B * H : 0, T(0));
    reserve->extra.assign(P::kExtra ? Tn * B * H : 0, T(0));
    reserve->unprojected.assign(dims.P > 0 ? Tn * B * H : 0, T(0));
    const bool layer = in.norm.kind == NormKind::Layer;
    const int64_t norm_rows = in.norm.on() ? Tn * B : 0, rstd_size = layer ? Tn * B : Tn * GH;
    reserve->norm_x.assign(norm_rows * GH, T(0));
    reserve->norm_h.assign(norm_rows * GH, T(0));
    reserve->rstd_x.assign(in.norm.on() ? rstd_size : 0, T(0));
    reserve->rstd_h.assign(in.norm.on() ? rstd_size : 0, T(0));
    reserve->norm_c.assign(in.norm.cell() ? Tn * B * H : 0, T(0));
    reserve->rstd_c.assign(in.norm.cell() ? Tn * B : 0, T(0));
  }
  T* xw = keeps_gates ? reserve->gates.data() : scratch.take(Tn * B * GH);
  // Both biases add to the pre-activation, except the block of bh the cell's kernel applies
  // itself (a reset-after GRU's bh_n, which the reset gate multiplies).
  const int unfolded = P::unfolded_bias_block(spec);
  std::vector<T> bias(in.b, in.b + GH);
  if (in.bh)
    for (int64_t k = 0; k < GH; ++k)
      if (k / H != unfolded) bias[k] += in.bh[k];
  const T* packed[kMaxGates];  // Wh's column block g, packed
  T* packed_blocks[kMaxGates];
  for (int64_t g = 0; g < G; ++g) packed[g] = packed_blocks[g] = scratch.take(packed_size(K, S, H));
  T* packed_Wr = dims.P > 0 ? scratch.take(packed_size(K, H, S)) : nullptr;
  const int64_t rows = Tn * B, span = K.tile_span(), tiles = (H + span - 1) / span;
  const bool normalized = in.norm.on();
  // units [u0, u1) of every gate block: their columns of Wh packed (tiles from u0 / span)
  auto pack_units = [&](int64_t u0, int64_t u1) {
    for (int64_t g = 0; g < G; ++g)
      pack_wide(K, in.Wh, GH, false, S, g * H + u0, u1 - u0, packed_blocks[g] + u0 * S);
  };
  // units [u0, u1) of every gate block of xw = x @ Wx + biases, with the packed GEMM kernel
  // (a team member's share: T*B rows but a few tiles, where a BLAS call per block is slow);
  // a batch norm (the only one a team runs) normalises each column before the biases
  auto project_units = [&](int64_t u0, int64_t u1) {
    Scratch<T> local;
    T* packed_Wx = local.take(packed_size(K, I, u1 - u0));
    for (int64_t g = 0; g < G; ++g) {
      const int64_t c0 = g * H + u0, n = u1 - u0;
      pack_wide(K, in.Wx, GH, false, I, c0, n, packed_Wx);
      for (int64_t r = 0; r < rows; ++r) {
        if (normalized) std::fill_n(xw + r * GH + c0, n, T(0));
        else copy_n(xw + r * GH + c0, bias.data() + c0, n);
      }
      for (int64_t j = u0; j < u1; j += span)
        K.packed_gemm(in.x, I, rows, I, packed_Wx + (j - u0) * I, std::min(span, u1 - j),
                      xw + g * H + j, GH, true);
      if (normalized) {
        batch_norm_inputs(in.norm, steps, B, GH, c0, n, xw, reserve, out.batch_stats);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = c0; k < c0 + n; ++k) xw[r * GH + k] += bias[size_t(k)];
      }
    }
  };
  if (out.batch_stats) std::fill(out.batch_stats, out.batch_stats + 4 * GH, T(0));
  if (!uniform) std::fill(out.y, out.y + Tn * B * S, T(0));
  const T* unfolded_bias = (unfolded >= 0 && in.bh) ? in.bh + unfolded * H : nullptr;
  const int64_t work = Tn * B * H * GH;
  // The row path. 1. input projection and packing: the packing of Wh (per gate block) and the
  // bias rows of xw as parallel jobs (serial, they were ~5% of a 2-thread call at
  // 35x20x650x650), then the GEMM over all steps
  auto forward_by_rows = [&] {
    std::vector<std::function<void()>> jobs;
    for (int64_t g = 0; g < G; ++g)
      jobs.push_back([&, g] { pack_wide(K, in.Wh, GH, false, S, g * H, H, packed_blocks[g]); });
    if (packed_Wr) jobs.push_back([&] { pack_wide(K, in.Wr, S, false, H, 0, S, packed_Wr); });
    const int64_t parts = get_num_threads();
    if (!normalized)  // the biases come first and the GEMM adds to them
      for (int64_t part = 0; part < parts; ++part)
        jobs.push_back([&, part] {
          for (int64_t r = rows * part / parts; r < rows * (part + 1) / parts; ++r)
            copy_n(xw + r * GH, bias.data(), GH);
        });
    parallel_jobs(work, jobs);
    gemm<T>(false, false, rows, GH, I, T(1), in.x, I, in.Wx, GH, normalized ? T(0) : T(1), xw, GH);
    if (normalized) normalize_inputs(K, in.norm, steps, B, GH, bias.data(), xw, reserve, out.batch_stats);

    // 2. the sequential loop, over packed recurrent weights; batch rows are independent, so
    // row ranges run on separate threads with no synchronisation between steps. A batch norm's
    // statistics of a step read every row of it: one thread has them all.
    parallel_ranges(B, in.norm.kind == NormKind::Batch ? 0 : work, [&](int64_t b0, int64_t b1) {
      forward_rows<P>(spec, dims, in, out, reserve, steps, xw, unfolded_bias, K, packed,
                      packed_Wr, b0, b1);
    });
  };
  if (team_size > 1) {
    // A small batch: the hidden units split across a team, which shares h. Each member packs
    // and projects its own units (into its own cache), then runs the loop over them.
    Scratch<T> shared;
    T* h[2] = {shared.take(B * H), shared.take(B * H)};
    for (int64_t b = 0; b < B; ++b) copy_row(in.h0 ? in.h0 + b * H : nullptr, h[0] + b * H, H);
    parallel_team(team_size, [&](int member, int members, TeamBarrier& barrier) {
      const UnitTeam<T> mine{member, members, &barrier, {h[0], h[1]}, {nullptr, nullptr}};
      const int64_t u0 = mine.first_tile(tiles) * span, u1 = std::min(mine.end_tile(tiles) * span, H);
      pack_units(u0, u1);
      project_units(u0, u1);
      forward_rows<P>(spec, dims, in, out, reserve, steps, xw, unfolded_bias, K, packed,
                      packed_Wr, 0, B, &mine);
    });
  } else {
    forward_by_rows();
  }
  if (out.batch_stats) {  // sums over the steps with a valid row -> averages
    int64_t steps_with_rows = 0;
    for (int64_t b = 0; b < B; ++b) steps_with_rows = std::max(steps_with_rows, steps.length(b));
    if (steps_with_rows > 0)
      for (int64_t k = 0; k < 4 * GH; ++k) out.batch_stats[k] /= T(steps_with_rows);
  }
}

// Backward of normalize_inputs: dXW ([T*B, G*H], the gradient w.r.t. the normalised and
// scaled projection) in place becomes the one w.r.t. x @ Wx.
template <typename T>
void normalize_inputs_backward(const PointwiseKernels<T>& K, const LayerNorm<T>& norm,
                               const StepMap& steps, int64_t B, int64_t GH,
                               const CpuReserve<T>& reserve, T* dXW) {
  const int64_t Tn = steps.T;
  if (norm.kind == NormKind::Layer) {
    parallel_ranges(Tn * B, Tn * B * GH * 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        K.layer_norm_backward(dXW + r * GH, norm.gamma_x, reserve.norm_x.data() + r * GH,
                            reserve.rstd_x[size_t(r)], GH);
    });
    return;
  }
  // batch: features are independent, so threads take column ranges
  parallel_ranges(GH, Tn * B * GH * 8, [&](int64_t c0, int64_t c1) {
    std::vector<T> sums(size_t(2 * (c1 - c0)));
    std::vector<T*> rows;
    std::vector<const T*> hats;
    for (int64_t s = 0; s < Tn; ++s) {
      step_rows(steps, s, B, GH, dXW, reserve.norm_x.data(), rows, hats);
      batch_norm_backward(rows, hats, c0, c1 - c0, norm.gamma_x, reserve.rstd_x.data() + s * GH,
                          sums.data());
    }
  });
}

// Gradients of the peephole weights, [3, H]: dp_i = sum da_i c_{t-1}, dp_f = sum da_f c_{t-1},
// dp_o = sum da_o c_t over every valid position, from the gate gradients dA ([T, B, 4H], zero
// where padded) and the reserve's cell states.
template <typename T>
void peephole_gradients(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
                        const CpuReserve<T>& reserve, const StepMap& steps, const T* dA, T* dp) {
  const int64_t B = dims.B, H = dims.H, GH = 4 * H;
  const int64_t oi = spec.gate_block[0] * H, of = spec.gate_block[1] * H, oo = spec.gate_block[3] * H;
  std::fill(dp, dp + 3 * H, T(0));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < steps.length(b); ++s) {
      const int64_t row = steps.row(s, b, B);
      const T* c = reserve.cells.data() + row * H;
      const T* c_prev = s > 0 ? reserve.cells.data() + steps.row(s - 1, b, B) * H
                              : (in.c0 ? in.c0 + b * H : nullptr);
      const T* da = dA + row * GH;
      for (int64_t j = 0; j < H; ++j) {
        if (c_prev) {
          dp[j] += da[oi + j] * c_prev[j];
          dp[H + j] += da[of + j] * c_prev[j];
        }
        dp[2 * H + j] += da[oo + j] * c[j];
      }
    }
}

// Backpropagation through time of policy P. Parameter gradients are assigned (=): the loop
// collects the gate gradients of every step first, then one GEMM per weight sums over time.
template <class P, typename T>
void backward_with(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
                   const CpuReserve<T>& reserve, const LayerGrads<T>& g) {
  const int64_t Tn = dims.T, B = dims.B, I = dims.I, H = dims.H, S = dims.state_size();
  const int64_t GH = P::kGates * H, rows = Tn * B;
  const bool projected = dims.P > 0;
  const PointwiseKernels<T>& K = kernels<T>();
  const StepMap steps{in.lengths, Tn, in.reverse};
  const bool uniform = steps.uniform(B);
  const int separate = P::separate_input_grad_block(spec);
  BlockRange stage_blocks[P::kStages];
  for (int stage = 0; stage < P::kStages; ++stage) stage_blocks[stage] = P::stage_blocks(spec, stage);

  // dA: gradient w.r.t. the recurrent pre-activations, [T, B, G*H] by position (zero where
  // padded). It is also the input-side gradient, except in the policy's separate block, whose
  // input-side gradient lives in dax (a reset-after GRU's n block: no factor r).
  // Every position is written when all rows have the full length; otherwise the padded ones
  // must read as zeros in the GEMMs below.
  Scratch<T> scratch;
  auto shared = [&](int64_t n) { return uniform ? scratch.take(n) : scratch.take_zeroed(n); };
  T* dA = shared(rows * GH);
  T* dax = separate >= 0 ? shared(rows * H) : nullptr;
  T* h_prev_all = shared(rows * S);  // h_{t-1} of every position, for dWh
  // projected: the gradient reaching each h_t (from y_t and from step t+1), for dWr
  T* dh_all = projected ? shared(rows * S) : nullptr;
  // normalised: the gradient w.r.t. the recurrent product before its normalisation (what Wh
  // and h_{t-1} receive), and w.r.t. a normalised cell state's tanh input (for its gains)
  const LayerNorm<T>& norm = in.norm;
  T* dHW = norm.on() ? shared(rows * GH) : nullptr;
  T* du_all = norm.cell() ? shared(rows * H) : nullptr;
  // Wh^T packed once per call in wide tiles (one broadcast of dA feeds several FMAs), one
  // packed matrix per stage (its gate blocks' columns); the packing runs as parallel jobs,
  // each a range of whole tiles.
  const int64_t span = K.tile_span(), tiles = (S + span - 1) / span;
  const int64_t half = (S + span - 1) / span / 2 * span;  // units in the first half's tiles
  const T* packed[P::kStages];
  std::vector<std::function<void()>> jobs;
  for (int stage = 0; stage < P::kStages; ++stage) {
    const T* src = in.Wh + stage_blocks[stage].first * H;
    const int64_t K_dim = stage_blocks[stage].count * H;
    T* P_stage = scratch.take(packed_size(K, K_dim, H));
    packed[stage] = P_stage;
    jobs.push_back([=, &K] { pack_wide(K, src, GH, true, K_dim, 0, half, P_stage); });
    jobs.push_back([=, &K] {
      pack_wide(K, src, GH, true, K_dim, half, S - half, P_stage + half * K_dim);
    });
  }
  // projected: Wr^T packed for dm = dh @ Wr^T, [M, S] @ [S, H]
  T* packed_WrT = projected ? scratch.take(packed_size(K, S, H)) : nullptr;
  if (projected) jobs.push_back([&] { pack_wide(K, in.Wr, S, true, S, 0, H, packed_WrT); });
  parallel_jobs(Tn * B * H * GH, jobs);
  const T* mask = in.recurrent_mask;

  // The reverse loop for batch rows [b0, b1) (rows are independent: threads share nothing
  // but the disjoint rows of dA, dax and h_prev_all they write).
  auto reverse_loop = [&](int64_t b0, int64_t b1, const UnitTeam<T>* team) {
    const int64_t M = b1 - b0;
    // the units this call owns: whole rows, or a team member's tiles (a team runs unprojected
    // one-stage cells: S = H); bu0, bn: the same for the H-wide views of a row
    const int64_t tile0 = team ? team->first_tile(tiles) : 0;
    const int64_t tile1 = team ? team->end_tile(tiles) : tiles;
    const int64_t u0 = tile0 * span, u1 = team ? std::min(tile1 * span, S) : S;
    const int64_t bu0 = team ? u0 : 0, bn = team ? u1 - u0 : H;
    // dh_direct: gradient reaching h_{t-1} past the recurrent product (a GRU's z * h_{t-1});
    // d_hr: gradient w.r.t. the recurrent product's input (h_{t-1}, times the mask if any);
    // d_stage: gradient w.r.t. a later stage's product input
    Scratch<T> local;  // every buffer is written before it is read
    T* dh = local.take(M * S);
    T* dh_total = local.take(M * S);  // dh plus dy_t: the gradient reaching h_t
    T* dm = projected ? local.take(M * H) : nullptr;  // reaching the cell's output m_t
    T* dc = P::kCellState ? local.take(M * H) : nullptr;
    T* dh_direct = P::kDirectPath ? local.take(M * H) : nullptr;
    T* d_hr = local.take(M * S);
    T* dA_scratch = uniform ? nullptr : local.take(M * GH);
    T* d_stage = P::kStages > 1 ? local.take(M * H) : nullptr;
    T* dHW_scratch = norm.on() && !uniform ? local.take(M * GH) : nullptr;
    T* norm_sums = norm.kind == NormKind::Batch ? local.take(2 * GH) : nullptr;
    T* cell_scratch = norm.cell() ? local.take(2 * H) : nullptr;
    std::vector<T*> step_rows;
    std::vector<const T*> step_hats;
    std::vector<T> hr_row(H);
    // C [M, S] (+)= dA columns [M, K] @ (the matching Wh columns)^T
    auto transposed_product = [&](const T* dA_cols, int64_t K_dim, const T* packed_cols, T* C,
                                  bool accumulate) {
      for (int64_t t = tile0; t < tile1; ++t)
        K.packed_gemm(dA_cols, GH, M, K_dim, packed_cols + t * K_dim * span,
                      std::min<int64_t>(span, S - t * span), C + t * span, S, accumulate);
    };
    for (int64_t i = 0; i < M; ++i) {
      const int64_t b = b0 + i;
      copy_row(g.dhT ? g.dhT + b * S : nullptr, dh + i * S, S);
      if (P::kCellState) copy_row(g.dcT ? g.dcT + b * H : nullptr, dc + i * H, H);
    }
    // the parts of a row's view that do not depend on the step
    auto row_view = [&](int64_t i) {
      BackwardRow<T> r{};
      r.dc = P::kCellState ? dc + i * H : nullptr;
      r.dh_direct = P::kDirectPath ? dh_direct + i * H : nullptr;
      r.d_stage = d_stage ? d_stage + i * H : nullptr;
      r.d_hr = d_hr + i * S;
      r.peep = in.peepholes;
      r.block = spec.gate_block;
      r.n = H;
      r.H = H;
      return r;
    };
    // a row's view of this call's units only (a team member's): every per-unit pointer moves
    // to the first unit (gate-wide rows keep their gate stride H)
    auto own_units = [&](BackwardRow<T>& r) {
      if (!team) return;
      for (T** p : {&r.dc, &r.dh_direct, &r.da, &r.dax})
        if (*p) *p += bu0;
      for (const T** p : {&r.gates, &r.h, &r.h_prev, &r.h_in, &r.c, &r.c_prev, &r.extra, &r.peep,
                          &r.dh})
        if (*p) *p += bu0;
      r.n = bn;
    };

    for (int64_t s = Tn - 1; s >= 0; --s) {
      T* dA_scratch_now = team && !uniform ? team->shared[s % 2] : dA_scratch;
      T* dA_step = uniform ? dA + (steps.uniform_position(s) * B + b0) * GH : dA_scratch_now;
      if (!uniform)  // this call's columns: the other members zero theirs
        for (int64_t i = 0; i < M; ++i)
          for (int64_t gate = 0; gate < (team ? P::kGates : 1); ++gate)
            std::fill_n(dA_step + i * GH + gate * H + bu0, team ? bn : GH, T(0));

      // the gradient reaching each active row's h_t, and h_{t-1} kept for dWh
      for (int64_t i = 0; i < M; ++i) {
        const int64_t b = b0 + i;
        const int64_t row = steps.row(s, b, B);
        if (row < 0) continue;
        const T* h_prev = s == 0 ? (in.h0 ? in.h0 + b * S : nullptr)
                                 : reserve.states.data() + steps.row(s - 1, b, B) * S;
        copy_row(h_prev ? h_prev + u0 : nullptr, h_prev_all + row * S + u0, u1 - u0);
        for (int64_t j = u0; j < u1; ++j)
          dh_total[i * S + j] = dh[i * S + j] + (g.dy ? g.dy[row * S + j] : T(0));
        if (projected) copy_n(dh_all + row * S, dh_total + i * S, S);
      }
      // projected: dm_t = dh_t @ Wr^T for all rows at once (inactive rows are never read)
      const int64_t unit_tiles = (H + span - 1) / span;
      if (projected)
        for (int64_t t = 0; t < unit_tiles; ++t)
          K.packed_gemm(dh_total, S, M, S, packed_WrT + t * S * span,
                        std::min<int64_t>(span, H - t * span), dm + t * span, H, false);

      for (int64_t i = 0; i < M; ++i) {
        const int64_t b = b0 + i, row = steps.row(s, b, B);
        if (row < 0) continue;
        const int64_t prev_row = s == 0 ? -1 : steps.row(s - 1, b, B);
        BackwardRow<T> r = row_view(i);
        r.gates = P::kKeepsGates ? reserve.gates.data() + row * GH : nullptr;
        // h, h_prev and h_in are H wide here: only cells that cannot be projected read them
        r.h = reserve.states.data() + row * S;
        r.h_prev = s == 0 ? (in.h0 ? in.h0 + b * S : nullptr) : reserve.states.data() + prev_row * S;
        r.h_in = h_prev_all + row * S;
        if (P::kCellState) {
          r.c = reserve.cells.data() + row * H;
          r.c_prev = s == 0 ? (in.c0 ? in.c0 + b * H : nullptr) : reserve.cells.data() + prev_row * H;
        }
        r.extra = P::kExtra ? reserve.extra.data() + row * H : nullptr;
        r.dh = projected ? dm + i * H : dh_total + i * S;
        r.da = dA_step + i * GH;
        r.dax = dax ? dax + row * H : nullptr;
        own_units(r);
        if constexpr (P::kNormalizableCell) {
          if (norm.cell()) {
            P::normalized_backward_row(K, r, norm.gamma_c, norm.beta_c,
                                       reserve.norm_c.data() + row * H,
                                       reserve.rstd_c[size_t(row)], du_all + row * H,
                                       cell_scratch);
            continue;
          }
        }
        P::backward_row(K, r);
      }

      // later stages first: their product input's gradient gives the earlier stages' dA blocks
      for (int stage = P::kStages - 1; stage >= 1; --stage) {
        const BlockRange blocks = stage_blocks[stage];
        transposed_product(dA_step + blocks.first * H, blocks.count * H, packed[stage], d_stage,
                           false);
        for (int64_t i = 0; i < M; ++i) {
          const int64_t b = b0 + i;
          const int64_t row = steps.row(s, b, B);
          if (row < 0) continue;
          const T* h_in = h_prev_all + row * H;
          if (mask) {
            for (int64_t j = 0; j < H; ++j) hr_row[j] = h_in[j] * mask[b * H + j];
            h_in = hr_row.data();
          }
          BackwardRow<T> r = row_view(i);
          r.gates = P::kKeepsGates ? reserve.gates.data() + row * GH : nullptr;
          r.h_in = h_in;
          r.da = dA_step + i * GH;
          P::backward_stage(K, stage, r);
        }
      }
      // normalised: back through the normalisation of the product (one stage: forward checked),
      // the columns of this call's units (a team splits only batch-normalised loops)
      T* dprod = dA_step;
      if (norm.on()) {
        T* dHW_now = team && !uniform ? team->shared_norm[s % 2] : dHW_scratch;
        dprod = uniform ? dHW + (steps.uniform_position(s) * B + b0) * GH : dHW_now;
        step_rows.clear();
        step_hats.clear();
        for (int64_t i = 0; i < M; ++i) {
          const int64_t b = b0 + i;
          const int64_t row = steps.row(s, b, B);
          if (row < 0) continue;
          for (int64_t gate = 0; gate < (team ? P::kGates : 1); ++gate)
            copy_n(dprod + i * GH + gate * H + bu0, dA_step + i * GH + gate * H + bu0, team ? bn : GH);
          const T* hat = reserve.norm_h.data() + row * GH;
          if (norm.kind == NormKind::Layer)
            K.layer_norm_backward(dprod + i * GH, norm.gamma_h, hat, reserve.rstd_h[size_t(row)], GH);
          step_rows.push_back(dprod + i * GH);
          step_hats.push_back(hat);
        }
        if (norm.kind == NormKind::Batch)
          for (int64_t gate = 0; gate < (team ? P::kGates : 1); ++gate)
            batch_norm_backward(step_rows, step_hats, gate * H + bu0, team ? bn : GH, norm.gamma_h,
                                reserve.rstd_h.data() + s * GH, norm_sums);
      }
      // stage 0's product input is h_{t-1} (masked); later stages already wrote into d_hr.
      // A team's product reads every member's columns of the step's gate gradients.
      if (team) team->barrier->wait();
      transposed_product(dprod + stage_blocks[0].first * H, stage_blocks[0].count * H,
                         packed[0], d_hr, P::kStages > 1);

      for (int64_t i = 0; i < M; ++i) {
        const int64_t b = b0 + i, row = steps.row(s, b, B);
        if (row < 0) continue;  // rows past their length pass dh through unchanged
        for (int64_t j = u0; j < u1; ++j) {
          const T d = d_hr[i * S + j];
          dh[i * S + j] = (P::kDirectPath ? dh_direct[i * S + j] : T(0)) +
                          (mask ? mask[b * S + j] * d : d);
        }
        if (!uniform) {
          for (int64_t gate = 0; gate < (team ? P::kGates : 1); ++gate)
            copy_n(dA + row * GH + gate * H + bu0, dA_step + i * GH + gate * H + bu0, team ? bn : GH);
          if (dHW)
            for (int64_t gate = 0; gate < (team ? P::kGates : 1); ++gate)
              copy_n(dHW + row * GH + gate * H + bu0, dprod + i * GH + gate * H + bu0,
                     team ? bn : GH);
        }
      }
    }
    for (int64_t i = 0; i < M; ++i) {
      if (g.dh0) copy_n(g.dh0 + (b0 + i) * S + u0, dh + i * S + u0, u1 - u0);
      if (P::kCellState && g.dc0) copy_n(g.dc0 + (b0 + i) * H + bu0, dc + i * H + bu0, bn);
    }
  };
  const int team_size = unit_team_size<P>(dims, in, Tn * B * H * GH, span);
  if (team_size > 1) {
    // a small batch: the hidden units split across a team, as in forward
    T* shared_dA[2] = {nullptr, nullptr};
    T* shared_dHW[2] = {nullptr, nullptr};
    if (!uniform) shared_dA[0] = scratch.take(B * GH), shared_dA[1] = scratch.take(B * GH);
    if (!uniform && norm.on()) shared_dHW[0] = scratch.take(B * GH), shared_dHW[1] = scratch.take(B * GH);
    parallel_team(team_size, [&](int member, int members, TeamBarrier& barrier) {
      const UnitTeam<T> mine{member, members, &barrier, {shared_dA[0], shared_dA[1]},
                             {shared_dHW[0], shared_dHW[1]}};
      reverse_loop(0, B, &mine);
    });
  } else {
    // a batch norm's step couples its rows: one thread has them all
    parallel_ranges(B, norm.kind == NormKind::Batch ? 0 : Tn * B * H * GH,
                  [&](int64_t b0, int64_t b1) { reverse_loop(b0, b1, nullptr); });
  }

  // 3. weight, bias and input gradients as GEMMs over all T*B rows.
  // dWh, per stage: the stage's product input over all positions (stage 0: h_{t-1}, which Wh
  // saw times the mask; a later one: the reserve's extra) times its blocks of dA
  if (mask)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < S; ++j) h_prev_all[r * S + j] *= mask[(r % B) * S + j];
  // The GEMMs are independent but dx's (one output, accumulated over column groups): they run
  // as jobs on the pool when each is too small to split itself (a small batch: otherwise ~70%
  // of a batch-1 backward ran on one thread), one after the other when each splits itself.
  std::vector<std::function<void()>> products;
  int64_t largest = 0, total = 0;
  auto add_product = [&](int64_t work, std::function<void()> job) {
    largest = std::max(largest, work);
    total += work;
    products.push_back(std::move(job));
  };
  for (int stage = 0; stage < P::kStages; ++stage) {
    const int64_t c0 = stage_blocks[stage].first * H, width = stage_blocks[stage].count * H;
    // stage 0 reads h_{t-1} (S wide); a later stage the reserve's extra (H wide, unprojected)
    const T* product_input = stage == 0 ? h_prev_all : reserve.extra.data();
    const int64_t K_dim = stage == 0 ? S : H;
    add_product(K_dim * width * rows, [=, &g, &reserve] {
      gemm<T>(true, false, K_dim, width, rows, T(1), product_input, K_dim,
              (dHW ? dHW : dA) + c0, GH, T(0), g.dWh + c0, GH);
    });
  }
  // dWr = sum over positions of m_t^T dh_t
  if (projected)
    add_product(H * S * rows, [&] {
      gemm<T>(true, false, H, S, rows, T(1), reserve.unprojected.data(), H, dh_all, S, T(0),
              g.dWr, S);
    });
  if (P::kPeepholes) peephole_gradients(spec, dims, in, reserve, steps, dA, g.dpeepholes);
  // dWx, dx, db from the input-side gradient of each column block (input_side.h)
  std::vector<GradColumns<T>> input_side = input_side_columns<T>(dA, dax, separate, H, GH);
  for (const GradColumns<T>& cols : input_side)
    column_sums(cols.grad, rows, cols.width, cols.ld, g.db + cols.c0);
  if (norm.on()) {
    // b adds after the normalisation of x @ Wx: its rows need the whole input-side gradient.
    // These passes over [T*B, G*H] split rows (the copy) or columns (the gains' sums) across
    // the threads.
    T* dXW = scratch.take(rows * GH);
    parallel_ranges(rows, rows * GH * 8, [&](int64_t r0, int64_t r1) {
      for (const GradColumns<T>& cols : input_side)
        for (int64_t r = r0; r < r1; ++r) copy_n(dXW + r * GH + cols.c0, cols.grad + r * cols.ld, cols.width);
    });
    std::fill(g.dgamma_x, g.dgamma_x + GH, T(0));
    std::fill(g.dgamma_h, g.dgamma_h + GH, T(0));
    parallel_ranges(GH, rows * GH * 8, [&](int64_t c0, int64_t c1) {
      add_column_products(dXW, reserve.norm_x.data(), rows, GH, c0, c1, g.dgamma_x);
      add_column_products(dA, reserve.norm_h.data(), rows, GH, c0, c1, g.dgamma_h);
    });
    normalize_inputs_backward(K, norm, steps, B, GH, reserve, dXW);
    input_side = {{dXW, GH, 0, GH}};
  }
  if (norm.cell()) {
    std::fill(g.dgamma_c, g.dgamma_c + H, T(0));
    add_column_products(du_all, reserve.norm_c.data(), rows, H, 0, H, g.dgamma_c);
    column_sums(du_all, rows, H, H, g.dbeta_c);
  }
  for (const GradColumns<T>& cols : input_side)
    add_product(I * cols.width * rows, [&, cols] {
      gemm<T>(true, false, I, cols.width, rows, T(1), in.x, I, cols.grad, cols.ld, T(0),
              g.dWx + cols.c0, GH);
    });
  add_product(rows * I * GH, [&] {
    for (size_t k = 0; k < input_side.size(); ++k) {
      const GradColumns<T>& cols = input_side[k];
      gemm<T>(false, true, rows, I, cols.width, T(1), cols.grad, cols.ld, in.Wx + cols.c0, GH,
              k == 0 ? T(0) : T(1), g.dx, I);
    }
  });
  if (largest < kMinParallelWork) {
    parallel_jobs(total, products);
  } else {
    for (const auto& job : products) job();
  }
  // dbh: every block of bh adds to the pre-activation whose gradient is dA
  if (g.dbh) {
    if (separate < 0) copy_n(g.dbh, g.db, GH);
    else column_sums(dA, rows, GH, GH, g.dbh);
  }
}

}  // namespace

template <typename T>
void forward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
             const LayerOutputs<T>& out, CpuReserve<T>* reserve) {
  with_cell_policy(spec, [&](auto policy) {
    using P = decltype(policy);
    // the policy must agree with the cell table the bindings sized the arrays by
    if (P::kGates != spec.gates() || P::kCellState != spec.has_cell_state())
      throw std::logic_error("the CPU policy of this cell disagrees with the cell table");
    if ((dims.P > 0 && !P::kProjectable) || (P::kPeepholes && !in.peepholes))
      throw std::logic_error("projection or peepholes requested from a cell without them");
    if (in.norm.on() && (P::kStages != 1 || dims.P > 0 || P::kPeepholes ||
                         (in.norm.cell() && !P::kNormalizableCell)))
      throw std::logic_error("normalisation requested from a cell variant without it");
    if (dims.state_size() == 0 || dims.B == 0) {
      // No state (H = 0, no projection) or no batch rows: every output is empty and there is
      // nothing to compute. The loops would still visit every step, or T*B positions, and an
      // empty x ((T, 0, I) or (T, B, 0)) allows those in the trillions.
      if (reserve) {
        reserve->dims = dims;
        reserve->spec = spec;
      }
      return;
    }
    forward_with<P>(spec, dims, in, out, reserve);
  });
}

template <typename T>
void backward(const CellSpec& spec, const Dims& dims, const LayerInputs<T>& in,
              const CpuReserve<T>& reserve, const LayerGrads<T>& g) {
  if (dims.state_size() == 0 || dims.B == 0) {
    // as in forward: nothing reaches a state, so every gradient is zero (dx, and the weights'
    // sums over no rows); the non-empty ones are filled without visiting the steps
    const int64_t GH = spec.gates() * dims.H, S = dims.state_size();
    auto zero = [](T* p, int64_t n) {
      if (p) std::fill(p, p + n, T(0));
    };
    zero(g.dx, dims.T * dims.B * dims.I);
    zero(g.dh0, dims.B * S);
    zero(g.dc0, dims.B * dims.H);
    zero(g.dWx, dims.I * GH);
    zero(g.dWh, S * GH);
    zero(g.db, GH);
    zero(g.dbh, GH);
    zero(g.dWr, dims.H * dims.P);
    zero(g.dpeepholes, 3 * dims.H);
    return;
  }
  with_cell_policy(spec, [&](auto policy) {
    backward_with<decltype(policy)>(spec, dims, in, reserve, g);
  });
}

int64_t scratch_bytes() { return g_scratch_bytes.load(); }

void release_scratch_memory() {
  ++g_release_epoch;
  // this thread's arenas now; other threads' at the start of their next call (or when they exit)
  Scratch<float> f;
  Scratch<double> d;
}

void inject_allocation_failure(int64_t nth, bool workers_only) {
  g_fail_workers_only = workers_only;
  g_fail_countdown = nth;
}

int64_t pending_allocation_failures() { return std::max<int64_t>(0, g_fail_countdown.load()); }

template void forward<float>(const CellSpec&, const Dims&, const LayerInputs<float>&,
                             const LayerOutputs<float>&, CpuReserve<float>*);
template void forward<double>(const CellSpec&, const Dims&, const LayerInputs<double>&,
                              const LayerOutputs<double>&, CpuReserve<double>*);
template void backward<float>(const CellSpec&, const Dims&, const LayerInputs<float>&,
                              const CpuReserve<float>&, const LayerGrads<float>&);
template void backward<double>(const CellSpec&, const Dims&, const LayerInputs<double>&,
                               const CpuReserve<double>&, const LayerGrads<double>&);

}  // namespace rnnkit
