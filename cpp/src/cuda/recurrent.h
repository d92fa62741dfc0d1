// The CUDA backend's time loops (docs/design.md "Kernels (CUDA)"), written once over a device
// type Dev and instantiated twice: with the CUDA device (backend.cu: cuBLAS, streams, device
// memory) and with a host device (emulation.cpp: plain loops and a column-major reference
// GEMM with cuBLAS's conventions), which the tests run against rnnkit.reference on machines
// without a GPU.
//
// Dev provides
//   Memory alloc(size_t bytes)          an owning block (Memory::data()), released on the
//                                       call's stream when it goes out of scope
//   void adopt(Memory&)                 release that block on this call's stream instead
//   void zero(void*, size_t), copy(void* dst, const void* src, size_t) (device to device),
//   upload(void* dst, const void* host, size_t)
//   void for_each(int64_t n, const F& f)   f(i) for every i < n (one thread per element)
//   void gemm_cm(bool ta, bool tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
//                                       cuBLAS's column-major C = alpha op(A) op(B) + beta C
//
// Per call: one GEMM projects the inputs of all steps; per step one GEMM with Wh (two for the
// reset-before GRU), one fused element-wise kernel for the gate maths (steps.h), and with a
// projection one GEMM with Wr; backward runs the steps in reverse with the same shape, then the
// weight gradients are GEMMs over all T*B rows. Rows past their length are computed by the
// per-step GEMMs (the batch stays one dense matrix) but never written.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "cuda/steps.h"
#include "rnnkit/backend.h"
#include "input_side.h"

namespace rnnkit::cuda {

// Row-major C [M, N] = alpha op(A) op(B) + beta C on a column-major GEMM: the row-major C is
// the column-major C^T, and C^T = op(B)^T op(A)^T, so the operands swap and keep their
// transposition flags. Empty products are handled here (cuBLAS refuses ld = 0).
template <class Dev, typename T>
void gemm(Dev& dev, bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // the sum over K is empty: C = beta C (beta is 0 or 1 here)
    if (beta == T(0)) dev.for_each(M * N, ZeroMatrix<T>{C, N, ldc});
    return;
  }
  dev.gemm_cm(tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
}

// Offsets of the buffers of one block of device memory (aligned for any element type).
class Layout {
 public:
  size_t add(size_t bytes) {
    const size_t at = size_;
    size_ += (bytes + 255) / 256 * 256;
    return at;
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
};

template <class Dev, typename T>
struct DeviceReserve final : Reserve {
  Dims dims;
  CellSpec spec;
  typename Dev::Memory mem;
  size_t bytes = 0;
  // [T, B, .] by time position, zero where padded
  T* gates = nullptr;        // G*H activated gates (LSTM, GRU)
  T* states = nullptr;       // S: h at each position
  T* cells = nullptr;        // H: LSTM c_t
  T* extra = nullptr;        // H: GRU h@Wh_n + bh_n (reset after) or r*h_in (reset before)
  T* unprojected = nullptr;  // H: the LSTM output before the projection
  size_t nbytes() const override { return bytes; }
};

struct CellShape {
  bool lstm = false, gru = false, relu = false, reset_after = true;
  int n_block = 0, rz_first = 0;  // reset-before GRU: the n block, and the first of r, z
  Blocks blk{{0, 1, 2, 3}};

  explicit CellShape(const CallDesc& call) {
    const CellSpec& spec = call.cell;
    lstm = spec.kind == CellKind::Lstm;
    gru = spec.kind == CellKind::Gru;
    relu = spec.kind == CellKind::RnnRelu;
    reset_after = spec.linear_before_reset;
    for (int k = 0; k < spec.gates(); ++k) blk.k[k] = spec.gate_block[k];
    if (gru) {
      n_block = spec.gate_block[2];
      // the first stage multiplies the r and z blocks in one product: they must be adjacent
      if (!reset_after && n_block != 0 && n_block != 2)
        throw std::invalid_argument("GRU gate order must keep the r and z blocks adjacent");
      rz_first = n_block == 0 ? 1 : 0;
    }
    if (call.dims.P > 0 && !lstm)
      throw std::logic_error("projection requested from a cell without one");
    if (spec.peepholes && (!lstm || !call.in.peepholes))
      throw std::logic_error("peepholes requested from a cell without them");
  }
  bool two_stages() const { return gru && !reset_after; }
};

inline int64_t steps_needed(const CallDesc& call) {
  const Dims& d = call.dims;
  if (!call.in.lengths) return d.T;
  int64_t most = 0;
  for (int64_t b = 0; b < d.B; ++b) most = std::max(most, call.in.lengths[b]);
  return most;
}

// lengths in the device's memory: the caller's copy, else one uploaded into `room` ([B]);
// null without lengths
template <class Dev>
const int64_t* device_lengths(Dev& dev, const InputViews& in, int64_t* room, int64_t B) {
  if (!in.lengths) return nullptr;
  if (in.lengths_device) return in.lengths_device;
  dev.upload(room, in.lengths, B * sizeof(int64_t));
  return room;
}

template <class Dev, typename T>
std::unique_ptr<Reserve> forward(Dev& dev, const CallDesc& call, const OutputViews& out,
                                 bool training) {
  const Dims& d = call.dims;
  const CellShape cs(call);
  const InputViews& in = call.in;
  const int64_t Tn = d.T, B = d.B, I = d.I, H = d.H, S = d.state_size(), P = d.P;
  const int64_t GH = call.cell.gates() * H, rows = Tn * B;
  const bool projected = P > 0;
  const auto* x = static_cast<const T*>(in.x);
  const auto* Wx = static_cast<const T*>(in.Wx);
  const auto* Wh = static_cast<const T*>(in.Wh);
  const auto* Wr = static_cast<const T*>(in.Wr);
  const auto* b = static_cast<const T*>(in.b);
  const auto* bh = static_cast<const T*>(in.bh);
  const auto* mask = static_cast<const T*>(in.recurrent_mask);
  const auto* peep = call.cell.peepholes ? static_cast<const T*>(in.peepholes) : nullptr;
  T* y = static_cast<T*>(out.y);
  const size_t e = sizeof(T);

  // the reserve (training) keeps the gates and what backward reads; in inference the gates
  // buffer is scratch and the rest is not kept
  auto reserve = std::make_unique<DeviceReserve<Dev, T>>();
  reserve->dims = d;
  reserve->spec = call.cell;
  Layout kept;
  const size_t o_gates = kept.add(rows * GH * e);
  size_t o_states = 0, o_cells = 0, o_extra = 0, o_unproj = 0;
  if (training) {
    o_states = kept.add(rows * S * e);
    if (cs.lstm) o_cells = kept.add(rows * H * e);
    if (cs.gru) o_extra = kept.add(rows * H * e);
    if (projected) o_unproj = kept.add(rows * H * e);
  }
  reserve->mem = dev.alloc(kept.size());
  char* kb = static_cast<char*>(reserve->mem.data());
  reserve->bytes = kept.size();
  T* xw = reinterpret_cast<T*>(kb + o_gates);
  if (training) {
    reserve->gates = cs.lstm || cs.gru ? xw : nullptr;
    reserve->states = reinterpret_cast<T*>(kb + o_states);
    if (cs.lstm) reserve->cells = reinterpret_cast<T*>(kb + o_cells);
    if (cs.gru) reserve->extra = reinterpret_cast<T*>(kb + o_extra);
    if (projected) reserve->unprojected = reinterpret_cast<T*>(kb + o_unproj);
    dev.zero(kb + o_states, kept.size() - o_states);  // padded positions read as zeros
  }

  Layout scratch;
  const size_t o_len = scratch.add(B * sizeof(int64_t)), o_h = scratch.add(B * S * e),
               o_c = scratch.add(B * H * e), o_hr = scratch.add(B * S * e),
               o_hw = scratch.add(B * GH * e), o_rh = scratch.add(B * H * e),
               o_m = scratch.add(B * H * e), o_hp = scratch.add(B * S * e);
  typename Dev::Memory mem = dev.alloc(scratch.size());
  char* sb = static_cast<char*>(mem.data());
  const int64_t* lengths = device_lengths(dev, in, reinterpret_cast<int64_t*>(sb + o_len), B);
  T* h = reinterpret_cast<T*>(sb + o_h);
  T* c = reinterpret_cast<T*>(sb + o_c);
  T* hr = reinterpret_cast<T*>(sb + o_hr);
  T* hw = reinterpret_cast<T*>(sb + o_hw);
  T* rh = reinterpret_cast<T*>(sb + o_rh);
  T* m = reinterpret_cast<T*>(sb + o_m);
  T* hp = reinterpret_cast<T*>(sb + o_hp);
  if (in.h0) dev.copy(h, in.h0, B * S * e);
  else dev.zero(h, B * S * e);
  if (cs.lstm) {
    if (in.c0) dev.copy(c, in.c0, B * H * e);
    else dev.zero(c, B * H * e);
  }
  dev.zero(y, rows * S * e);  // zero past each sequence's length

  // 1. input projection of all steps, biases first (all but a reset-after GRU's bh_n)
  const int unfolded = cs.gru && cs.reset_after ? cs.n_block : -1;
  if (rows > 0) dev.for_each(rows * GH, BiasRows<T>{xw, b, bh, GH, H, unfolded});
  gemm<Dev, T>(dev, false, false, rows, GH, I, T(1), x, I, Wx, GH, T(1), xw, GH);

  // 2. the time loop
  const StateOut<T> st{h, y, reserve->states, S};
  const int64_t units = B * H, steps = steps_needed(call);
  for (int64_t s = 0; s < steps; ++s) {
    const StepRows R{lengths, Tn, B, s, call.reverse};
    const T* A = h;  // what enters the recurrent product
    if (mask) {
      dev.for_each(B * S, MaskRows<T>{h, mask, hr, B, S});
      A = hr;
    }
    if (cs.two_stages()) {
      const int64_t rz = cs.rz_first * H, n = cs.n_block * H;
      gemm<Dev, T>(dev, false, false, B, 2 * H, S, T(1), A, S, Wh + rz, GH, T(0), hw + rz, GH);
      dev.for_each(units, GruForwardRz<T>{R, xw, hw, A, rh, reserve->extra, cs.blk, H});
      gemm<Dev, T>(dev, false, false, B, H, H, T(1), rh, H, Wh + n, GH, T(0), hw + n, GH);
      dev.for_each(units, GruForwardN<T>{R, xw, hw, cs.blk, st, H});
      continue;
    }
    gemm<Dev, T>(dev, false, false, B, GH, S, T(1), A, S, Wh, GH, T(0), hw, GH);
    if (cs.lstm) {
      dev.for_each(units, LstmForward<T>{R, xw, hw, c, reserve->cells, peep, cs.blk, st,
                                         projected ? m : nullptr, reserve->unprojected, H});
      if (projected) {
        gemm<Dev, T>(dev, false, false, B, S, H, T(1), m, H, Wr, S, T(0), hp, S);
        dev.for_each(B * S, ProjectedOut<T>{R, hp, st});
      }
    } else if (cs.gru) {
      const T* bh_n = bh ? bh + cs.n_block * H : nullptr;
      dev.for_each(units, GruForward<T>{R, xw, hw, bh_n, reserve->extra, cs.blk, st, H});
    } else {
      dev.for_each(units, RnnForward<T>{R, xw, hw, st, H, cs.relu});
    }
  }
  if (out.hT) dev.copy(out.hT, h, B * S * e);
  if (cs.lstm && out.cT) dev.copy(out.cT, c, B * H * e);
  if (!training) return nullptr;  // the reserve's memory is released on this call's stream
  return reserve;
}

template <class Dev, typename T>
void backward(Dev& dev, const CallDesc& call, const Reserve& any, const GradViews& g) {
  const auto* reserve = dynamic_cast<const DeviceReserve<Dev, T>*>(&any);
  if (!reserve)
    throw std::invalid_argument("reserve does not come from a forward of this backend and dtype");
  const Dims& d = call.dims;
  const CellSpec& spec = call.cell;
  if (reserve->dims.T != d.T || reserve->dims.B != d.B || reserve->dims.I != d.I ||
      reserve->dims.H != d.H || reserve->dims.P != d.P || reserve->spec.kind != spec.kind ||
      reserve->spec.linear_before_reset != spec.linear_before_reset ||
      reserve->spec.peepholes != spec.peepholes)
    throw std::invalid_argument("reserve does not belong to these inputs (shapes or cell differ)");
  dev.adopt(const_cast<DeviceReserve<Dev, T>*>(reserve)->mem);  // last used here
  const CellShape cs(call);
  const InputViews& in = call.in;
  const int64_t Tn = d.T, B = d.B, I = d.I, H = d.H, S = d.state_size(), P = d.P;
  const int64_t GH = spec.gates() * H, rows = Tn * B, units = B * H;
  const bool projected = P > 0;
  const auto* x = static_cast<const T*>(in.x);
  const auto* Wx = static_cast<const T*>(in.Wx);
  const auto* Wh = static_cast<const T*>(in.Wh);
  const auto* Wr = static_cast<const T*>(in.Wr);
  const auto* h0 = static_cast<const T*>(in.h0);
  const auto* c0 = cs.lstm ? static_cast<const T*>(in.c0) : nullptr;
  const auto* mask = static_cast<const T*>(in.recurrent_mask);
  const auto* peep = spec.peepholes ? static_cast<const T*>(in.peepholes) : nullptr;
  const auto* dy = static_cast<const T*>(g.dy);
  const auto* dhT = static_cast<const T*>(g.dhT);
  const auto* dcT = cs.lstm ? static_cast<const T*>(g.dcT) : nullptr;
  const size_t e = sizeof(T);
  // a reset-after GRU's n block: its input-side gradient (no factor r) lives in dax
  const int separate = cs.gru && cs.reset_after ? cs.n_block : -1;

  Layout lay;
  // zeroed by position: dA, dax, h_prev_all, dh_all (padded positions must read as zeros)
  const size_t o_dA = lay.add(rows * GH * e), o_dax = lay.add(separate >= 0 ? rows * H * e : 0),
               o_hprev = lay.add(rows * S * e), o_dhall = lay.add(projected ? rows * S * e : 0);
  const size_t zeroed = lay.size();
  const size_t o_len = lay.add(B * sizeof(int64_t)), o_dh = lay.add(B * S * e),
               o_dht = lay.add(B * S * e), o_dm = lay.add(B * H * e), o_dc = lay.add(B * H * e),
               o_direct = lay.add(B * H * e), o_dhr = lay.add(B * S * e),
               o_step = lay.add(B * GH * e), o_stage = lay.add(B * H * e),
               o_ones = lay.add(std::max<int64_t>(rows, 1) * e),
               o_peep = lay.add(peep ? rows * 3 * H * e : 0);
  typename Dev::Memory mem = dev.alloc(lay.size());
  char* base = static_cast<char*>(mem.data());
  auto at = [&](size_t off) { return reinterpret_cast<T*>(base + off); };
  dev.zero(base, zeroed);
  T *dA = at(o_dA), *dax = separate >= 0 ? at(o_dax) : nullptr, *h_prev_all = at(o_hprev);
  T* dh_all = projected ? at(o_dhall) : nullptr;
  const int64_t* lengths = device_lengths(dev, in, reinterpret_cast<int64_t*>(base + o_len), B);
  T *dh = at(o_dh), *dh_total = at(o_dht), *dm = at(o_dm), *dc = at(o_dc);
  T *dh_direct = cs.gru ? at(o_direct) : nullptr, *d_hr = at(o_dhr), *dA_step = at(o_step);
  T *d_stage = at(o_stage), *ones = at(o_ones);
  if (dhT) dev.copy(dh, dhT, B * S * e);
  else dev.zero(dh, B * S * e);
  if (cs.lstm) {
    if (dcT) dev.copy(dc, dcT, B * H * e);
    else dev.zero(dc, B * H * e);
  }

  for (int64_t s = steps_needed(call) - 1; s >= 0; --s) {
    const StepRows R{lengths, Tn, B, s, call.reverse};
    dev.for_each(B * S, GatherStep<T>{R, reserve->states, h0, dy, dh, h_prev_all, dh_total,
                                      dh_all, S});
    if (projected)  // dm_t = dh_t @ Wr^T
      gemm<Dev, T>(dev, false, true, B, H, S, T(1), dh_total, S, Wr, S, T(0), dm, H);
    if (cs.lstm) {
      dev.for_each(units, LstmBackward<T>{R, reserve->gates, reserve->cells, c0, peep,
                                          projected ? dm : dh_total, projected ? H : S, dc, dA,
                                          dA_step, cs.blk, H});
    } else if (cs.gru && cs.reset_after) {
      dev.for_each(units, GruBackward<T>{R, reserve->gates, reserve->extra, reserve->states, h0,
                                         dh_total, dA, dA_step, dax, dh_direct, cs.blk, H});
    } else if (cs.gru) {
      dev.for_each(units, GruBackwardZn<T>{R, reserve->gates, reserve->states, h0, dh_total, dA,
                                           dA_step, dh_direct, cs.blk, H});
      // the stage-2 product's input r*h_in: d_stage = da_n @ Wh_n^T gives da_r and d_hr
      const int64_t n = cs.n_block * H;
      gemm<Dev, T>(dev, false, true, B, H, H, T(1), dA_step + n, GH, Wh + n, GH, T(0), d_stage,
                   H);
      dev.for_each(units, GruBackwardR<T>{R, reserve->gates, h_prev_all, mask, d_stage, dA,
                                          dA_step, d_hr, cs.blk, H});
    } else {
      dev.for_each(units, RnnBackward<T>{R, reserve->states, dh_total, dA, dA_step, H, cs.relu});
    }
    // d_hr (+)= dA_step (stage-1 blocks) @ Wh^T
    if (cs.two_stages()) {
      const int64_t rz = cs.rz_first * H;
      gemm<Dev, T>(dev, false, true, B, S, 2 * H, T(1), dA_step + rz, GH, Wh + rz, GH, T(1),
                   d_hr, S);
    } else {
      gemm<Dev, T>(dev, false, true, B, S, GH, T(1), dA_step, GH, Wh, GH, T(0), d_hr, S);
    }
    dev.for_each(B * S, UpdateDh<T>{R, d_hr, dh_direct, mask, dh, S});
  }
  if (g.dh0) dev.copy(g.dh0, dh, B * S * e);
  if (cs.lstm && g.dc0) dev.copy(g.dc0, dc, B * H * e);

  // 3. weight, bias and input gradients over all T*B rows
  auto* dWx = static_cast<T*>(g.dWx);
  auto* dWh = static_cast<T*>(g.dWh);
  auto* db = static_cast<T*>(g.db);
  auto* dbh = static_cast<T*>(g.dbh);
  if (rows > 0) dev.for_each(rows, Fill<T>{ones, T(1)});
  if (mask && rows > 0) dev.for_each(rows * S, MaskRows<T>{h_prev_all, mask, h_prev_all, B, S});
  if (cs.two_stages()) {  // stage 1 read the masked h_{t-1}; stage 2 read r*h_in (extra)
    const int64_t rz = cs.rz_first * H, n = cs.n_block * H;
    gemm<Dev, T>(dev, true, false, S, 2 * H, rows, T(1), h_prev_all, S, dA + rz, GH, T(0),
                 dWh + rz, GH);
    gemm<Dev, T>(dev, true, false, H, H, rows, T(1), reserve->extra, H, dA + n, GH, T(0),
                 dWh + n, GH);
  } else {
    gemm<Dev, T>(dev, true, false, S, GH, rows, T(1), h_prev_all, S, dA, GH, T(0), dWh, GH);
  }
  if (projected)
    gemm<Dev, T>(dev, true, false, H, S, rows, T(1), reserve->unprojected, H, dh_all, S, T(0),
                 static_cast<T*>(g.dWr), S);
  if (peep) {
    T* terms = at(o_peep);
    if (rows > 0)
      dev.for_each(rows * H, PeepholeTerms<T>{lengths, Tn, B, H, call.reverse, dA,
                                              reserve->cells, c0, cs.blk, terms});
    gemm<Dev, T>(dev, false, false, 1, 3 * H, rows, T(1), ones, rows, terms, 3 * H, T(0),
                 static_cast<T*>(g.dpeepholes), 3 * H);
  }
  const std::vector<GradColumns<T>> input_side = input_side_columns<T>(dA, dax, separate, H, GH);
  auto* dx = static_cast<T*>(g.dx);
  for (size_t k = 0; k < input_side.size(); ++k) {
    const GradColumns<T>& col = input_side[k];
    gemm<Dev, T>(dev, true, false, I, col.width, rows, T(1), x, I, col.grad, col.ld, T(0),
                 dWx + col.c0, GH);
    gemm<Dev, T>(dev, false, true, rows, I, col.width, T(1), col.grad, col.ld, Wx + col.c0, GH,
                 k == 0 ? T(0) : T(1), dx, I);
    gemm<Dev, T>(dev, false, false, 1, col.width, rows, T(1), ones, rows, col.grad, col.ld, T(0),
                 db + col.c0, col.width);
  }
  if (dbh) {  // every block of bh adds to the pre-activation whose gradient is dA
    if (separate < 0) dev.copy(dbh, db, GH * e);
    else gemm<Dev, T>(dev, false, false, 1, GH, rows, T(1), ones, rows, dA, GH, T(0), dbh, GH);
  }
}

// A Backend over device Dev: Dev is constructed per call from the call's placement.
template <class Dev>
class DeviceBackend final : public Backend {
 public:
  const char* name() const override { return Dev::kName; }
  std::unique_ptr<Reserve> forward(const CallDesc& call, const OutputViews& out,
                                   bool training) const override {
    Dev dev(call);
    return call.dtype == DType::Float32 ? cuda::forward<Dev, float>(dev, call, out, training)
                                        : cuda::forward<Dev, double>(dev, call, out, training);
  }
  void backward(const CallDesc& call, const Reserve& reserve, const GradViews& g) const override {
    Dev dev(call);
    if (call.dtype == DType::Float32) cuda::backward<Dev, float>(dev, call, reserve, g);
    else cuda::backward<Dev, double>(dev, call, reserve, g);
  }
};

}  // namespace rnnkit::cuda
