// The CPU backend: turns a backend-neutral CallDesc into the typed views of the CPU time
// loops (recurrent.cpp) and owns the reserve they fill.
#include <memory>
#include <stdexcept>

#include "cpu/recurrent.h"
#include "rnnkit/backend.h"

namespace rnnkit {
namespace {

template <typename T>
LayerInputs<T> typed_inputs(const CallDesc& call) {
  const InputViews& v = call.in;
  LayerInputs<T> in;
  in.x = static_cast<const T*>(v.x);
  in.h0 = static_cast<const T*>(v.h0);
  in.c0 = call.cell.has_cell_state() ? static_cast<const T*>(v.c0) : nullptr;
  in.Wx = static_cast<const T*>(v.Wx);
  in.Wh = static_cast<const T*>(v.Wh);
  in.b = static_cast<const T*>(v.b);
  in.bh = static_cast<const T*>(v.bh);
  in.Wr = call.dims.P > 0 ? static_cast<const T*>(v.Wr) : nullptr;
  in.peepholes = call.cell.peepholes ? static_cast<const T*>(v.peepholes) : nullptr;
  in.lengths = v.lengths;
  in.reverse = call.reverse;
  in.recurrent_mask = static_cast<const T*>(v.recurrent_mask);
  in.norm.kind = v.norm.kind;
  in.norm.gamma_x = static_cast<const T*>(v.norm.gamma_x);
  in.norm.gamma_h = static_cast<const T*>(v.norm.gamma_h);
  in.norm.gamma_c = static_cast<const T*>(v.norm.gamma_c);
  in.norm.beta_c = static_cast<const T*>(v.norm.beta_c);
  return in;
}

template <typename T>
std::unique_ptr<Reserve> typed_forward(const CallDesc& call, const OutputViews& o, bool training) {
  LayerOutputs<T> out{static_cast<T*>(o.y), static_cast<T*>(o.hT),
                      call.cell.has_cell_state() ? static_cast<T*>(o.cT) : nullptr,
                      static_cast<T*>(o.batch_stats)};
  std::unique_ptr<CpuReserve<T>> reserve = training ? std::make_unique<CpuReserve<T>>() : nullptr;
  forward<T>(call.cell, call.dims, typed_inputs<T>(call), out, reserve.get());
  return reserve;
}

template <typename T>
void typed_backward(const CallDesc& call, const Reserve& any, const GradViews& v) {
  // the reserve must be this backend's, of this dtype, and filled by a call of this shape
  const auto* reserve = dynamic_cast<const CpuReserve<T>*>(&any);
  if (!reserve) throw std::invalid_argument("reserve does not come from a CPU forward of this dtype");
  const Dims& d = call.dims;
  if (reserve->dims.T != d.T || reserve->dims.B != d.B || reserve->dims.I != d.I ||
      reserve->dims.H != d.H || reserve->dims.P != d.P || reserve->spec.kind != call.cell.kind ||
      reserve->spec.linear_before_reset != call.cell.linear_before_reset ||
      reserve->spec.peepholes != call.cell.peepholes)
    throw std::invalid_argument("reserve does not belong to these inputs (shapes or cell differ)");
  const bool cell_state = call.cell.has_cell_state();
  LayerGrads<T> g;
  g.dy = static_cast<const T*>(v.dy);
  g.dhT = static_cast<const T*>(v.dhT);
  g.dcT = cell_state ? static_cast<const T*>(v.dcT) : nullptr;
  g.dx = static_cast<T*>(v.dx);
  g.dh0 = static_cast<T*>(v.dh0);
  g.dc0 = cell_state ? static_cast<T*>(v.dc0) : nullptr;
  g.dWx = static_cast<T*>(v.dWx);
  g.dWh = static_cast<T*>(v.dWh);
  g.db = static_cast<T*>(v.db);
  g.dbh = static_cast<T*>(v.dbh);
  g.dWr = d.P > 0 ? static_cast<T*>(v.dWr) : nullptr;
  g.dpeepholes = call.cell.peepholes ? static_cast<T*>(v.dpeepholes) : nullptr;
  g.dgamma_x = static_cast<T*>(v.dgamma_x);
  g.dgamma_h = static_cast<T*>(v.dgamma_h);
  g.dgamma_c = static_cast<T*>(v.dgamma_c);
  g.dbeta_c = static_cast<T*>(v.dbeta_c);
  backward<T>(call.cell, d, typed_inputs<T>(call), *reserve, g);
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  std::unique_ptr<Reserve> forward(const CallDesc& call, const OutputViews& out,
                                   bool training) const override {
    return call.dtype == DType::Float32 ? typed_forward<float>(call, out, training)
                                        : typed_forward<double>(call, out, training);
  }
  void backward(const CallDesc& call, const Reserve& reserve, const GradViews& grads) const override {
    if (call.dtype == DType::Float32) typed_backward<float>(call, reserve, grads);
    else typed_backward<double>(call, reserve, grads);
  }
};

}  // namespace

const Backend& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace rnnkit
