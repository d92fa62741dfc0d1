// Recurrent op family: forward (training or inference) and backward of one layer, one direction.
// Python (rnnkit.functional) gives friendly errors first; the checks here guard the core.
#include <pybind11/stl.h>

#include <memory>

#include "bindings/checks.h"
#include "bindings/without_gil.h"
#include "rnnkit/recurrent.h"

namespace rnnkit::bindings {

namespace {

CellSpec make_spec(const std::string& cell, bool linear_before_reset,
                   const std::vector<int>& gate_block) {
  CellSpec spec;
  if (cell == "rnn_tanh") spec.kind = CellKind::RnnTanh;
  else if (cell == "rnn_relu") spec.kind = CellKind::RnnRelu;
  else if (cell == "lstm") spec.kind = CellKind::Lstm;
  else if (cell == "gru") spec.kind = CellKind::Gru;
  else throw py::value_error("cell must be 'rnn_tanh', 'rnn_relu', 'lstm' or 'gru', got '" + cell + "'");
  spec.linear_before_reset = linear_before_reset;
  const int G = spec.gates();
  if (!gate_block.empty()) {
    if (int(gate_block.size()) != G)
      throw py::value_error("gate_block must have one entry per gate (" + std::to_string(G) + ")");
    std::vector<bool> seen(G, false);
    for (int k = 0; k < G; ++k) {
      if (gate_block[k] < 0 || gate_block[k] >= G || seen[gate_block[k]])
        throw py::value_error("gate_block must be a permutation of 0.." + std::to_string(G - 1));
      seen[gate_block[k]] = true;
      spec.gate_block[k] = gate_block[k];
    }
  }
  return spec;
}

// Everything forward and backward share: checked pointers and sizes of the layer's inputs.
template <typename T>
struct CheckedInputs {
  Dims dims;
  LayerInputs<T> in;
};

template <typename T>
CheckedInputs<T> check_inputs(const CellSpec& spec, const py::array& x, const py::object& h0,
                              const py::object& c0, const py::array& Wx, const py::array& Wh,
                              const py::object& b, const py::object& bh,
                              const py::object& lengths, bool reverse,
                              const py::object& recurrent_mask) {
  if (x.ndim() != 3) throw py::value_error("x must be 3-D (T, B, I)");
  if (Wh.ndim() != 2) throw py::value_error("Wh must be 2-D (H, G*H)");
  CheckedInputs<T> r;
  Dims& d = r.dims;
  d.T = x.shape(0);
  d.B = x.shape(1);
  d.I = x.shape(2);
  d.H = Wh.shape(0);
  const int64_t GH = spec.gates() * d.H;
  LayerInputs<T>& in = r.in;
  in.x = checked_input<T>(x, "x", {d.T, d.B, d.I});
  in.h0 = checked_input<T>(h0, "h0", {d.B, d.H}, true);
  in.c0 = spec.has_cell_state() ? checked_input<T>(c0, "c0", {d.B, d.H}, true) : nullptr;
  in.Wx = checked_input<T>(Wx, "Wx", {d.I, GH});
  in.Wh = checked_input<T>(Wh, "Wh", {d.H, GH});
  in.b = b.is_none() ? nullptr : checked_input<T>(b, "b", {GH});  // None only from backward
  in.bh = checked_input<T>(bh, "bh", {GH}, true);
  in.lengths = checked_input<int64_t>(lengths, "lengths", {d.B}, true);
  if (in.lengths)
    for (int64_t i = 0; i < d.B; ++i)
      if (in.lengths[i] < 0 || in.lengths[i] > d.T)
        throw py::value_error("lengths[" + std::to_string(i) + "] = " + std::to_string(in.lengths[i]) +
                              " is outside [0, T=" + std::to_string(d.T) + "]");
  in.reverse = reverse;
  in.recurrent_mask = checked_input<T>(recurrent_mask, "recurrent_mask", {d.B, d.H}, true);
  return r;
}

template <typename T>
py::tuple forward_impl(const CellSpec& spec, const py::array& x, const py::object& h0,
                       const py::object& c0, const py::array& Wx, const py::array& Wh,
                       const py::object& b, const py::object& bh, const py::object& lengths,
                       bool reverse, const py::object& recurrent_mask, bool training) {
  if (b.is_none()) throw py::type_error("b must be an array, got None");
  CheckedInputs<T> ci = check_inputs<T>(spec, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                        recurrent_mask);
  const Dims& d = ci.dims;
  py::array_t<T> y = new_array<T>({d.T, d.B, d.H}), hT = new_array<T>({d.B, d.H});
  py::object cT = py::none();
  LayerOutputs<T> out{y.mutable_data(), hT.mutable_data(), nullptr};
  if (spec.has_cell_state()) {
    py::array_t<T> c = new_array<T>({d.B, d.H});
    out.cT = c.mutable_data();
    cT = c;
  }
  std::shared_ptr<Reserve<T>> reserve = training ? std::make_shared<Reserve<T>>() : nullptr;
  without_gil([&] { forward<T>(spec, d, ci.in, out, reserve.get()); });
  py::object res = reserve ? py::cast(reserve) : py::none();
  return py::make_tuple(y, hT, cT, res);
}

template <typename T>
py::tuple backward_impl(const CellSpec& spec, const py::array& x, const py::object& h0,
                        const py::object& c0, const py::array& Wx, const py::array& Wh,
                        bool has_bh, const py::object& lengths, bool reverse,
                        const py::object& recurrent_mask, const Reserve<T>& reserve,
                        const py::object& dy, const py::object& dhT, const py::object& dcT) {
  CheckedInputs<T> ci = check_inputs<T>(spec, x, h0, c0, Wx, Wh, py::none(), py::none(), lengths,
                                        reverse, recurrent_mask);
  const Dims& d = ci.dims;
  const int64_t GH = spec.gates() * d.H;
  if (reserve.dims.T != d.T || reserve.dims.B != d.B || reserve.dims.I != d.I ||
      reserve.dims.H != d.H || reserve.spec.kind != spec.kind ||
      reserve.spec.linear_before_reset != spec.linear_before_reset)
    throw py::value_error("cache does not belong to these inputs (shapes or cell differ)");
  LayerGrads<T> g;
  g.dy = checked_input<T>(dy, "dy", {d.T, d.B, d.H}, true);
  g.dhT = checked_input<T>(dhT, "dhT", {d.B, d.H}, true);
  g.dcT = spec.has_cell_state() ? checked_input<T>(dcT, "dcT", {d.B, d.H}, true) : nullptr;
  py::array_t<T> dx = new_array<T>({d.T, d.B, d.I}), dh0 = new_array<T>({d.B, d.H});
  py::array_t<T> dWx = new_array<T>({d.I, GH}), dWh = new_array<T>({d.H, GH});
  py::array_t<T> db = new_array<T>({GH});
  py::object dc0 = py::none(), dbh = py::none();
  g.dx = dx.mutable_data();
  g.dh0 = dh0.mutable_data();
  g.dWx = dWx.mutable_data();
  g.dWh = dWh.mutable_data();
  g.db = db.mutable_data();
  if (spec.has_cell_state()) {
    py::array_t<T> a = new_array<T>({d.B, d.H});
    g.dc0 = a.mutable_data();
    dc0 = a;
  }
  if (has_bh) {
    py::array_t<T> a = new_array<T>({GH});
    g.dbh = a.mutable_data();
    dbh = a;
  }
  without_gil([&] { backward<T>(spec, d, ci.in, reserve, g); });
  return py::make_tuple(dx, dh0, dc0, dWx, dWh, db, dbh);
}

template <typename T>
void bind_reserve(py::module_& m, const char* name) {
  py::class_<Reserve<T>, std::shared_ptr<Reserve<T>>>(m, name,
      "Opaque buffers a training-mode forward keeps for backward")
      .def_property_readonly("nbytes", &Reserve<T>::nbytes)
      .def_property_readonly(
          "dims",
          [](const Reserve<T>& r) { return py::make_tuple(r.dims.T, r.dims.B, r.dims.I, r.dims.H); },
          "(T, B, I, H) of the forward that filled it, so a cache's arrays can be checked against it");
}

}  // namespace

void recurrent_init(py::module_& m) {
  bind_reserve<float>(m, "Reserve32");
  bind_reserve<double>(m, "Reserve64");

  m.def("forward",
        [](const std::string& cell, const py::array& x, const py::object& h0, const py::object& c0,
           const py::array& Wx, const py::array& Wh, const py::object& b, const py::object& bh,
           const py::object& lengths, bool reverse, const py::object& recurrent_mask,
           bool linear_before_reset, const std::vector<int>& gate_block, bool training) {
          CellSpec spec = make_spec(cell, linear_before_reset, gate_block);
          if (x.dtype().is(py::dtype::of<float>()))
            return forward_impl<float>(spec, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                       recurrent_mask, training);
          if (x.dtype().is(py::dtype::of<double>()))
            return forward_impl<double>(spec, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                        recurrent_mask, training);
          throw py::type_error("x must be float32 or float64");
        },
        py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("Wx"), py::arg("Wh"),
        py::arg("b"), py::arg("bh"), py::arg("lengths"), py::arg("reverse"),
        py::arg("recurrent_mask"), py::arg("linear_before_reset"), py::arg("gate_block"),
        py::arg("training"),
        "One layer, one direction. Returns (y, hT, cT or None, reserve or None).");

  m.def("backward",
        [](const std::string& cell, const py::array& x, const py::object& h0, const py::object& c0,
           const py::array& Wx, const py::array& Wh, bool has_bh, const py::object& lengths,
           bool reverse, const py::object& recurrent_mask, bool linear_before_reset,
           const std::vector<int>& gate_block, const py::object& reserve, const py::object& dy,
           const py::object& dhT, const py::object& dcT) {
          CellSpec spec = make_spec(cell, linear_before_reset, gate_block);
          if (x.dtype().is(py::dtype::of<float>()))
            return backward_impl<float>(spec, x, h0, c0, Wx, Wh, has_bh, lengths, reverse,
                                        recurrent_mask, reserve.cast<const Reserve<float>&>(),
                                        dy, dhT, dcT);
          if (x.dtype().is(py::dtype::of<double>()))
            return backward_impl<double>(spec, x, h0, c0, Wx, Wh, has_bh, lengths, reverse,
                                         recurrent_mask, reserve.cast<const Reserve<double>&>(),
                                         dy, dhT, dcT);
          throw py::type_error("x must be float32 or float64");
        },
        py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("Wx"), py::arg("Wh"),
        py::arg("has_bh"), py::arg("lengths"), py::arg("reverse"), py::arg("recurrent_mask"),
        py::arg("linear_before_reset"),
        py::arg("gate_block"), py::arg("reserve"), py::arg("dy"), py::arg("dhT"), py::arg("dcT"),
        "BPTT of one layer, one direction. Returns (dx, dh0, dc0 or None, dWx, dWh, db, dbh or None).");
}

}  // namespace rnnkit::bindings
