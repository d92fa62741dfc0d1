// Recurrent op family: forward (training or inference) and backward of one layer, one
// direction, through the backend seam (rnnkit/backend.h).
//
// A training forward returns a ForwardHandle: the checked input arrays (kept alive, so the
// views in its CallDesc stay valid) and the backend's reserve. Backward takes the handle and
// the incoming gradients only, so nothing is passed back, re-checked or mismatched.
// Python (rnnkit.functional) gives friendly errors first; the checks here guard the core.
#include <pybind11/stl.h>

#include <atomic>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings/cell_spec.h"
#include "bindings/checks.h"
#include "bindings/without_gil.h"
#include "rnnkit/backend.h"

namespace rnnkit::bindings {

namespace {

std::atomic<int64_t> g_live_handles{0};  // for the tests that show handles are freed

// What backward needs from its forward: the call as the backend saw it, the arrays its views
// point into, and the backend's reserve. A checkpoint handle (keep_reserve=false) keeps the
// inputs only; backward then reruns the forward to rebuild the reserve for its own use.
struct ForwardHandle {
  ForwardHandle() { ++g_live_handles; }
  ~ForwardHandle() { --g_live_handles; }
  ForwardHandle(const ForwardHandle&) = delete;
  ForwardHandle& operator=(const ForwardHandle&) = delete;

  CallDesc call;
  const Backend* backend = nullptr;
  bool has_bh = false;
  std::vector<py::object> arrays;     // the checked inputs (x, h0, c0, Wx, Wh, b, bh, ...)
  std::unique_ptr<Reserve> reserve;   // null for a checkpoint handle
  size_t state_nbytes = 0;            // bytes of h0 and c0
  py::object batch_statistics = py::none();  // [4, G*H] of a batch-normalised forward

  size_t nbytes() const { return reserve ? reserve->nbytes() : state_nbytes; }
};

size_t dtype_size(DType t) { return t == DType::Float32 ? sizeof(float) : sizeof(double); }

// norm: {"kind": "layer" | "batch", "gamma_x": (G*H,), "gamma_h": (G*H,)} and, for a layer
// norm of a cell state, "gamma_c" and "beta_c": (H,).
template <typename T>
void describe_norm(CallDesc& call, const py::object& norm, std::vector<py::object>& keep) {
  if (!py::isinstance<py::dict>(norm)) throw py::type_error("norm must be a dict or None");
  const py::dict d = py::reinterpret_borrow<py::dict>(norm);
  const std::string kind = d.contains("kind") ? py::str(d["kind"]).cast<std::string>() : "";
  NormViews& v = call.in.norm;
  if (kind == "layer") v.kind = NormKind::Layer;
  else if (kind == "batch") v.kind = NormKind::Batch;
  else throw py::value_error("norm['kind'] must be 'layer' or 'batch', got '" + kind + "'");
  const CellInfo& info = cell_info(call.cell.kind);
  const bool one_stage = call.cell.kind != CellKind::Gru || call.cell.linear_before_reset;
  if (!one_stage || call.dims.P > 0 || call.cell.peepholes)
    throw py::value_error("norm: the " + std::string(info.name) + " cell with these options "
                          "has no normalised form (not with projection, peepholes or a GRU "
                          "with linear_before_reset=False)");
  auto get = [&](const char* key) -> py::object {
    return d.contains(key) ? py::reinterpret_borrow<py::object>(d[key]) : py::object(py::none());
  };
  const int64_t GH = call.cell.gates() * call.dims.H;
  const std::string x_name = "norm['gamma_x']", h_name = "norm['gamma_h']";
  v.gamma_x = checked_input<T>(get("gamma_x"), x_name.c_str(), {GH});
  v.gamma_h = checked_input<T>(get("gamma_h"), h_name.c_str(), {GH});
  const py::object gamma_c = get("gamma_c"), beta_c = get("beta_c");
  if (!gamma_c.is_none() || !beta_c.is_none()) {
    if (v.kind != NormKind::Layer || !info.has_cell_state)
      throw py::value_error("norm['gamma_c'] and norm['beta_c'] normalise a cell state: layer "
                            "norm of a cell with one (LSTM) only");
    v.gamma_c = checked_input<T>(gamma_c, "norm['gamma_c']", {call.dims.H});
    v.beta_c = checked_input<T>(beta_c, "norm['beta_c']", {call.dims.H});
  }
  for (const char* key : {"gamma_x", "gamma_h", "gamma_c", "beta_c"}) keep.push_back(get(key));
}

// Checks the arrays of one call and describes it; `keep` receives every array a view points
// into.
template <typename T>
CallDesc describe_call(const CellSpec& spec, const py::array& x, const py::object& h0,
                       const py::object& c0, const py::array& Wx, const py::array& Wh,
                       const py::object& b, const py::object& bh, const py::object& lengths,
                       bool reverse, const py::object& recurrent_mask, const py::object& Wr,
                       const py::object& peepholes, const py::object& norm,
                       std::vector<py::object>& keep) {
  if (x.ndim() != 3) throw py::value_error("x must be 3-D (T, B, I)");
  if (Wh.ndim() != 2) throw py::value_error("Wh must be 2-D (S, G*H)");
  if (b.is_none()) throw py::type_error("b must be an array, got None");
  const CellInfo& info = cell_info(spec.kind);
  if (!Wr.is_none() && !info.takes_projection)
    throw py::value_error("Wr: the " + std::string(info.name) + " cell takes no projection");
  CallDesc call;
  call.cell = spec;
  call.dtype = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  call.reverse = reverse;
  Dims& d = call.dims;
  d.T = x.shape(0);
  d.B = x.shape(1);
  d.I = x.shape(2);
  // H from Wh's G*H columns (its rows are S: P when projected); P from Wr (H, P)
  if (Wh.shape(1) % spec.gates() != 0)
    throw py::value_error("Wh must have G*H columns (G = " + std::to_string(spec.gates()) + ")");
  d.H = Wh.shape(1) / spec.gates();
  if (!Wr.is_none()) {
    if (!py::isinstance<py::array>(Wr)) throw py::type_error("Wr must be an array (H, P)");
    const auto Wr_array = py::reinterpret_borrow<py::array>(Wr);
    if (Wr_array.ndim() != 2 || Wr_array.shape(1) < 1)
      throw py::value_error("Wr must be a 2-D array (H, P) with P >= 1");
    d.P = Wr_array.shape(1);
  }
  const int64_t GH = spec.gates() * d.H, S = d.state_size();
  InputViews& in = call.in;
  in.x = checked_input<T>(x, "x", {d.T, d.B, d.I});
  in.h0 = checked_input<T>(h0, "h0", {d.B, S}, true);
  in.c0 = spec.has_cell_state() ? checked_input<T>(c0, "c0", {d.B, d.H}, true) : nullptr;
  in.Wx = checked_input<T>(Wx, "Wx", {d.I, GH});
  in.Wh = checked_input<T>(Wh, "Wh", {S, GH});
  in.b = checked_input<T>(b, "b", {GH});
  in.bh = checked_input<T>(bh, "bh", {GH}, true);
  in.Wr = d.P > 0 ? checked_input<T>(Wr, "Wr", {d.H, d.P}) : nullptr;
  if (spec.peepholes) {
    if (peepholes.is_none()) throw py::type_error("peepholes must be an array (3, H), got None");
    in.peepholes = checked_input<T>(peepholes, "peepholes", {3, d.H});
  }
  in.lengths = checked_input<int64_t>(lengths, "lengths", {d.B}, true);
  if (in.lengths)
    for (int64_t i = 0; i < d.B; ++i)
      if (in.lengths[i] < 0 || in.lengths[i] > d.T)
        throw py::value_error("lengths[" + std::to_string(i) + "] = " + std::to_string(in.lengths[i]) +
                              " is outside [0, T=" + std::to_string(d.T) + "]");
  in.recurrent_mask = checked_input<T>(recurrent_mask, "recurrent_mask", {d.B, S}, true);
  keep = {x, h0, spec.has_cell_state() ? c0 : py::none(), Wx, Wh, b, bh, lengths, recurrent_mask,
          Wr, peepholes};
  if (!norm.is_none()) describe_norm<T>(call, norm, keep);
  return call;
}

std::string describe_dims(const CallDesc& call, const char* what) {
  const Dims& d = call.dims;
  return std::string(cell_info(call.cell.kind).name) + " " + what + " (T=" + std::to_string(d.T) +
         ", B=" + std::to_string(d.B) + ", I=" + std::to_string(d.I) + ", H=" +
         std::to_string(d.H) + (d.P ? ", P=" + std::to_string(d.P) : std::string()) + ")";
}

// Elements a forward allocates per time position and batch row (outputs, the input projection
// or gate reserve, and in training the rest of the reserve), times T*B, in bytes. An upper
// bound of what recurrent.cpp allocates, computed without overflow.
uint64_t forward_bytes(const CallDesc& call, bool reserve) {
  const Dims& d = call.dims;
  const int64_t GH = call.cell.gates() * d.H, S = d.state_size();
  // y and the gates (or their scratch); the reserve adds states, cells or GRU extras, and the
  // unprojected outputs
  const uint64_t per_position = uint64_t(S) + uint64_t(GH) + (reserve ? uint64_t(S) + 2 * uint64_t(d.H) : 0);
  const uint64_t positions = saturating_product({d.T, d.B, int64_t(per_position)});
  const uint64_t states = saturating_product({d.B, 4 * (S + d.H + GH)});
  return saturating_bytes(saturating_sum(positions, states), dtype_size(call.dtype));
}

// Backward: dx, the gate gradients and the previous states of every position (and, for a
// checkpoint handle, the forward it reruns first).
uint64_t backward_bytes(const CallDesc& call, bool reruns_forward) {
  const Dims& d = call.dims;
  const int64_t GH = call.cell.gates() * d.H, S = d.state_size();
  const uint64_t own = saturating_product({d.T, d.B, d.I + 2 * GH + 2 * S + d.H});
  const uint64_t rerun = reruns_forward ? forward_bytes(call, true) : 0;
  return saturating_sum(saturating_bytes(own, dtype_size(call.dtype)), rerun);
}

// New arrays for the outputs of `call`; cT is None for cells without a cell state.
template <typename T>
py::tuple new_outputs(const CallDesc& call, OutputViews& out) {
  const Dims& d = call.dims;
  const int64_t S = d.state_size();
  py::array_t<T> y = new_array<T>({d.T, d.B, S}), hT = new_array<T>({d.B, S});
  out.y = y.mutable_data();
  out.hT = hT.mutable_data();
  py::object cT = py::none();
  if (call.cell.has_cell_state()) {
    py::array_t<T> c = new_array<T>({d.B, d.H});
    out.cT = c.mutable_data();
    cT = c;
  }
  return py::make_tuple(y, hT, cT);
}

template <typename T>
py::tuple forward_impl(const CellSpec& spec, const py::array& x, const py::object& h0,
                       const py::object& c0, const py::array& Wx, const py::array& Wh,
                       const py::object& b, const py::object& bh, const py::object& lengths,
                       bool reverse, const py::object& recurrent_mask, const py::object& Wr,
                       const py::object& peepholes, const py::object& norm, bool training,
                       bool keep_reserve) {
  auto handle = std::make_unique<ForwardHandle>();
  handle->call = describe_call<T>(spec, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                  recurrent_mask, Wr, peepholes, norm, handle->arrays);
  handle->backend = &cpu_backend();
  handle->has_bh = !bh.is_none();
  const CallDesc& call = handle->call;
  check_fits_in_memory(forward_bytes(call, training && keep_reserve), describe_dims(call, "forward"));
  const NormKind norm_kind = call.in.norm.kind;
  if (norm_kind == NormKind::Batch && !training)
    throw py::value_error("norm kind 'batch' normalises with the batch's statistics, a training "
                          "forward's (an inference-mode batch norm is an affine map: fold it "
                          "into the weights)");
  if (norm_kind != NormKind::None && training && !keep_reserve)
    throw py::value_error("norm: a normalised forward keeps its reserve (keep_reserve=True)");
  OutputViews out;
  py::tuple outputs = new_outputs<T>(call, out);
  if (norm_kind == NormKind::Batch) {
    py::array_t<T> stats = new_array<T>({4, call.cell.gates() * call.dims.H});
    out.batch_stats = stats.mutable_data();
    handle->batch_statistics = stats;
  }
  const bool store = training && keep_reserve;
  std::unique_ptr<Reserve> reserve;
  without_gil([&] { reserve = handle->backend->forward(call, out, store); });
  if (!training) return py::make_tuple(outputs[0], outputs[1], outputs[2], py::none());
  handle->reserve = std::move(reserve);
  const size_t state = size_t(call.dims.B) * sizeof(T);
  handle->state_nbytes = (call.in.h0 ? state * call.dims.state_size() : 0) +
                         (call.in.c0 ? state * call.dims.H : 0);
  return py::make_tuple(outputs[0], outputs[1], outputs[2], py::cast(std::move(handle)));
}

template <typename T>
py::tuple backward_impl(const ForwardHandle& handle, const py::object& dy, const py::object& dhT,
                        const py::object& dcT) {
  const CallDesc& call = handle.call;
  const Dims& d = call.dims;
  const int64_t GH = call.cell.gates() * d.H, S = d.state_size();
  const bool cell_state = call.cell.has_cell_state();
  check_fits_in_memory(backward_bytes(call, !handle.reserve), describe_dims(call, "backward"));
  GradViews g;
  g.dy = checked_input<T>(dy, "dy", {d.T, d.B, S}, true);
  g.dhT = checked_input<T>(dhT, "dhT", {d.B, S}, true);
  g.dcT = cell_state ? checked_input<T>(dcT, "dcT", {d.B, d.H}, true) : nullptr;
  py::array_t<T> dx = new_array<T>({d.T, d.B, d.I}), dh0 = new_array<T>({d.B, S});
  py::array_t<T> dWx = new_array<T>({d.I, GH}), dWh = new_array<T>({S, GH});
  py::array_t<T> db = new_array<T>({GH});
  py::object dc0 = py::none(), dbh = py::none(), dWr = py::none(), dpeepholes = py::none();
  g.dx = dx.mutable_data();
  g.dh0 = dh0.mutable_data();
  g.dWx = dWx.mutable_data();
  g.dWh = dWh.mutable_data();
  g.db = db.mutable_data();
  if (cell_state) {
    py::array_t<T> a = new_array<T>({d.B, d.H});
    g.dc0 = a.mutable_data();
    dc0 = a;
  }
  if (handle.has_bh) {
    py::array_t<T> a = new_array<T>({GH});
    g.dbh = a.mutable_data();
    dbh = a;
  }
  if (d.P > 0) {
    py::array_t<T> a = new_array<T>({d.H, d.P});
    g.dWr = a.mutable_data();
    dWr = a;
  }
  if (call.cell.peepholes) {
    py::array_t<T> a = new_array<T>({3, d.H});
    g.dpeepholes = a.mutable_data();
    dpeepholes = a;
  }
  py::dict norm_grads;
  if (call.in.norm.kind != NormKind::None) {
    auto add = [&](const char* name, int64_t n, void*& view) {
      py::array_t<T> a = new_array<T>({n});
      view = a.mutable_data();
      norm_grads[name] = a;
    };
    add("gamma_x", GH, g.dgamma_x);
    add("gamma_h", GH, g.dgamma_h);
    if (call.in.norm.gamma_c) {
      add("gamma_c", d.H, g.dgamma_c);
      add("beta_c", d.H, g.dbeta_c);
    }
  }
  // a checkpoint handle reruns its forward into throw-away outputs (y, hT, cT) to rebuild the
  // reserve
  std::vector<T> scratch;
  if (!handle.reserve) scratch.resize(size_t((d.T + 1) * d.B * S + d.B * d.H));
  without_gil([&] {
    if (handle.reserve) return handle.backend->backward(call, *handle.reserve, g);
    T* p = scratch.data();
    OutputViews out{p, p + d.T * d.B * S, cell_state ? p + (d.T + 1) * d.B * S : nullptr};
    std::unique_ptr<Reserve> rebuilt = handle.backend->forward(call, out, true);
    handle.backend->backward(call, *rebuilt, g);
  });
  // always ten items: the gains' gradients are None after a forward without normalisation
  py::object gains = norm_grads;
  if (call.in.norm.kind == NormKind::None) gains = py::none();
  return py::make_tuple(dx, dh0, dc0, dWx, dWh, db, dbh, dWr, dpeepholes, gains);
}

}  // namespace

void recurrent_init(py::module_& m) {
  py::class_<ForwardHandle>(m, "ForwardHandle",
      "What a training-mode forward keeps for backward: its checked inputs and the backend's "
      "reserve. Opaque; pass it to backward.")
      .def_property_readonly("nbytes", &ForwardHandle::nbytes,
          "Bytes kept for backward besides the inputs: the reserve, or for a checkpoint handle "
          "the initial states it holds")
      .def_property_readonly("dims", [](const ForwardHandle& h) {
        const Dims& d = h.call.dims;
        return py::make_tuple(d.T, d.B, d.I, d.H);
      }, "(T, B, I, H) of the forward")
      .def_property_readonly("state_size", [](const ForwardHandle& h) {
        return h.call.dims.state_size();
      }, "S, the width of h and of the outputs: the projection width P, or H")
      .def_property_readonly("cell", [](const ForwardHandle& h) {
        return std::string(cell_info(h.call.cell.kind).name);
      })
      .def_property_readonly("dtype", [](const ForwardHandle& h) {
        return h.call.dtype == DType::Float32 ? py::dtype::of<float>() : py::dtype::of<double>();
      })
      .def_property_readonly("keeps_reserve", [](const ForwardHandle& h) { return bool(h.reserve); },
          "False for a checkpoint handle: backward recomputes the forward first")
      .def_property_readonly("backend", [](const ForwardHandle& h) {
        return std::string(h.backend->name());
      })
      .def_property_readonly("batch_statistics", [](const ForwardHandle& h) {
        return h.batch_statistics;
      }, "A batch-normalised forward's (4, G*H) mean and unbiased variance of x @ Wx, then of "
         "h @ Wh, averaged over the steps with a valid row; None otherwise")
      .def("__reduce__", [](const ForwardHandle&) -> py::object {
        throw py::type_error("a ForwardHandle holds a backend's buffers and cannot be pickled or "
                             "copied; run the forward again");
      });

  m.def("_live_forward_handles", [] { return g_live_handles.load(); },
        "TEST ONLY: how many ForwardHandles (training caches' reserves) are alive now");

  m.def("cells", [] {
    py::list out;
    for (const CellInfo& c : all_cells()) {
      py::dict d;
      d["name"] = c.name;
      d["gates"] = c.gates;
      d["has_cell_state"] = c.has_cell_state;
      d["gate_names"] = c.gate_names;
      d["takes_peepholes"] = c.takes_peepholes;
      d["takes_projection"] = c.takes_projection;
      out.append(d);
    }
    return out;
  }, "The core's cell table: name, gates (G), has_cell_state, gate_names (canonical order), "
     "takes_peepholes, takes_projection");

  m.def("forward",
        [](const std::string& cell, const py::array& x, const py::object& h0, const py::object& c0,
           const py::array& Wx, const py::array& Wh, const py::object& b, const py::object& bh,
           const py::object& lengths, bool reverse, const py::object& recurrent_mask,
           bool linear_before_reset, const std::vector<int>& gate_block, bool training,
           bool keep_reserve, const py::object& Wr, const py::object& peepholes,
           const py::object& norm) {
          CellSpec spec = make_spec(cell, linear_before_reset, gate_block, !peepholes.is_none());
          if (has_dtype<float>(x))
            return forward_impl<float>(spec, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                       recurrent_mask, Wr, peepholes, norm, training, keep_reserve);
          if (has_dtype<double>(x))
            return forward_impl<double>(spec, x, h0, c0, Wx, Wh, b, bh, lengths, reverse,
                                        recurrent_mask, Wr, peepholes, norm, training, keep_reserve);
          throw py::type_error("x must be float32 or float64");
        },
        py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("Wx"), py::arg("Wh"),
        py::arg("b"), py::arg("bh"), py::arg("lengths"), py::arg("reverse"),
        py::arg("recurrent_mask"), py::arg("linear_before_reset"), py::arg("gate_block"),
        py::arg("training"), py::arg("keep_reserve") = true, py::arg("Wr") = py::none(),
        py::arg("peepholes") = py::none(), py::arg("norm") = py::none(),
        "One layer, one direction. Returns (y, hT, cT or None, handle or None); the handle "
        "(training only) is backward's input. keep_reserve=False keeps the inputs only and "
        "backward recomputes the forward (checkpointing). Wr (H, P): output projection, "
        "h and y are then P wide and Wh is (P, G*H); peepholes (3, H): p_i, p_f, p_o (LSTM). "
        "norm: None, or {'kind': 'layer' | 'batch', 'gamma_x': (G*H,), 'gamma_h': (G*H,)[, "
        "'gamma_c': (H,), 'beta_c': (H,)]} to normalise x @ Wx and h @ Wh (and an LSTM's "
        "cell state) inside the recurrence (batch: training only; not with keep_reserve=False).");

  m.def("backward",
        [](const ForwardHandle& handle, const py::object& dy, const py::object& dhT,
           const py::object& dcT) {
          if (handle.call.dtype == DType::Float32) return backward_impl<float>(handle, dy, dhT, dcT);
          return backward_impl<double>(handle, dy, dhT, dcT);
        },
        py::arg("handle"), py::arg("dy"), py::arg("dhT"), py::arg("dcT"),
        "BPTT of one layer, one direction, over a training forward's handle. "
        "Returns (dx, dh0, dc0 or None, dWx, dWh, db, dbh or None, dWr or None, "
        "dpeepholes or None, gains): gains is a dict of the gains' gradients by the names of "
        "forward's norm dict after a normalised forward, else None.");
}

}  // namespace rnnkit::bindings
