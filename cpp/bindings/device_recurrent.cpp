// See device_recurrent.h. Mirrors recurrent.cpp (the CPU bindings): one call is checked and
// described once (CallDesc), a training forward returns a handle that keeps the inputs alive
// and owns the backend's reserve, backward takes the handle and the incoming gradients.
#include "bindings/device_recurrent.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <memory>
#include <sstream>
#include <vector>

#include "bindings/cell_spec.h"
#include "bindings/without_gil.h"

namespace rnnkit::bindings {
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

struct Checker {
  DeviceModule spec;
  int device;
  DType dtype;

  // The array's data pointer after checking dtype (kind 'f' of the call's size, or int64 for
  // 'i'), C-contiguity, shape and placement. None gives nullptr when optional.
  void* get(const py::handle& obj, const char* name, const std::vector<int64_t>& shape,
            bool optional = false, bool writable = false, char kind = 'f') const {
    if (obj.is_none()) {
      if (optional) return nullptr;
      throw py::type_error(std::string(name) + " must be an array, got None");
    }
    if (!py::hasattr(obj, spec.interface))
      throw py::type_error(std::string(name) + " must be " + spec.what + ", got " +
                           std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
    py::dict d = obj.attr(spec.interface);
    const std::string typestr = py::str(d["typestr"]);
    const int size = kind == 'i' ? 8 : (dtype == DType::Float32 ? 4 : 8);
    const std::string want = std::string(1, kind) + std::to_string(size);
    if (typestr.size() != 3 || (typestr[0] != '<' && typestr[0] != '|' && typestr[0] != '=') ||
        typestr.substr(1) != want)
      throw py::type_error(std::string(name) + " must have dtype " +
                           (kind == 'i' ? "int64" : size == 4 ? "float32" : "float64") +
                           " (typestr '<" + want + "'), got typestr '" + typestr + "'");
    std::vector<int64_t> actual;
    for (const py::handle& n : py::tuple(d["shape"])) actual.push_back(n.cast<int64_t>());
    if (actual != shape)
      throw py::value_error(std::string(name) + " must have shape " + shape_text(shape) +
                            ", got " + shape_text(actual));
    if (d.contains("mask") && !d["mask"].is_none())
      throw py::value_error(std::string(name) + ": masked arrays are not supported");
    int64_t count = 1;
    for (int64_t n : shape) count *= n;
    if (d.contains("strides") && !d["strides"].is_none() && count > 1) {
      const py::tuple strides(d["strides"]);
      int64_t expected = size;
      for (size_t k = shape.size(); k-- > 0;) {
        if (shape[k] > 1 && strides[k].cast<int64_t>() != expected)
          throw py::value_error(std::string(name) + " must be C-contiguous");
        expected *= shape[k];
      }
    }
    const py::tuple data(d["data"]);
    void* ptr = reinterpret_cast<void*>(data[0].cast<uintptr_t>());
    if (writable && data[1].cast<bool>())
      throw py::value_error(std::string(name) + " must be writeable");
    if (count > 0) {
      if (!ptr) throw py::value_error(std::string(name) + " has a null data pointer");
      const std::string why = spec.check_pointer ? spec.check_pointer(ptr, device) : "";
      if (!why.empty()) throw py::value_error(std::string(name) + ": " + why);
    }
    return ptr;
  }
};

struct DeviceForwardHandle {
  CallDesc call;
  const Backend* backend = nullptr;
  bool has_bh = false;
  std::vector<py::object> arrays;  // the checked inputs the views point into
  py::object lengths;              // host int64 array the call's lengths point into
  py::object lengths_device;       // its device copy, or None
  std::unique_ptr<Reserve> reserve;
};

void require_interface(const py::handle& obj, const DeviceModule& spec, const char* name) {
  if (!py::hasattr(obj, spec.interface))
    throw py::type_error(std::string(name) + " must be " + spec.what + ", got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
}

std::vector<int64_t> shape_of(const py::handle& obj, const char* attr, const char* name) {
  if (!py::hasattr(obj, attr)) throw py::type_error(std::string(name) + " has no " + attr);
  std::vector<int64_t> s;
  for (const py::handle& n : py::tuple(obj.attr(attr)["shape"])) s.push_back(n.cast<int64_t>());
  return s;
}

DType dtype_of(const py::handle& x, const char* attr) {
  if (!py::hasattr(x, attr)) throw py::type_error(std::string("x has no ") + attr);
  const std::string t = py::str(x.attr(attr)["typestr"]);
  if (t.size() == 3 && t.substr(1) == "f4") return DType::Float32;
  if (t.size() == 3 && t.substr(1) == "f8") return DType::Float64;
  throw py::type_error("x must be float32 or float64, got typestr '" + t + "'");
}

}  // namespace

void device_recurrent_init(py::module_& m, const DeviceModule& spec) {
  py::class_<DeviceForwardHandle>(m, "ForwardHandle", py::module_local(),
      "What a training-mode forward on the device keeps for backward: its checked inputs and "
      "the backend's reserve (device memory). Opaque; pass it to backward.")
      .def_property_readonly("nbytes", [](const DeviceForwardHandle& h) {
        return h.reserve ? h.reserve->nbytes() : size_t(0);
      }, "Bytes of device memory kept for backward besides the inputs")
      .def_property_readonly("dims", [](const DeviceForwardHandle& h) {
        const Dims& d = h.call.dims;
        return py::make_tuple(d.T, d.B, d.I, d.H);
      }, "(T, B, I, H) of the forward")
      .def_property_readonly("state_size", [](const DeviceForwardHandle& h) {
        return h.call.dims.state_size();
      })
      .def_property_readonly("cell", [](const DeviceForwardHandle& h) {
        return std::string(cell_info(h.call.cell.kind).name);
      })
      .def_property_readonly("dtype", [](const DeviceForwardHandle& h) {
        return h.call.dtype == DType::Float32 ? py::dtype::of<float>() : py::dtype::of<double>();
      })
      .def_property_readonly("device", [](const DeviceForwardHandle& h) { return h.call.device; })
      .def_property_readonly("has_bh", [](const DeviceForwardHandle& h) { return h.has_bh; })
      .def_property_readonly("gates", [](const DeviceForwardHandle& h) { return h.call.cell.gates(); })
      .def_property_readonly("proj_size", [](const DeviceForwardHandle& h) { return h.call.dims.P; },
          "P, the projection's width; 0 without a projection")
      .def_property_readonly("peepholes", [](const DeviceForwardHandle& h) { return h.call.cell.peepholes; })
      .def_property_readonly("keeps_reserve", [](const DeviceForwardHandle& h) { return bool(h.reserve); })
      .def_property_readonly("backend", [](const DeviceForwardHandle& h) {
        return std::string(h.backend->name());
      })
      .def("__reduce__", [](const DeviceForwardHandle&) -> py::object {
        throw py::type_error("a ForwardHandle holds a backend's buffers and cannot be pickled or "
                             "copied; run the forward again");
      });

  m.def("forward",
        [spec](const std::string& cell, const py::object& x, const py::object& h0,
               const py::object& c0, const py::object& Wx, const py::object& Wh,
               const py::object& b, const py::object& bh, const py::object& lengths, bool reverse,
               const py::object& recurrent_mask, bool linear_before_reset,
               const std::vector<int>& gate_block, bool training, const py::object& Wr,
               const py::object& peepholes, const py::object& y, const py::object& hT,
               const py::object& cT, int device, uintptr_t stream,
               const py::object& lengths_device) -> py::object {
          auto handle = std::make_unique<DeviceForwardHandle>();
          const CellSpec cs = make_spec(cell, linear_before_reset, gate_block, !peepholes.is_none());
          const CellInfo& info = cell_info(cs.kind);
          CallDesc& call = handle->call;
          call.cell = cs;
          require_interface(x, spec, "x");
          require_interface(Wh, spec, "Wh");
          call.dtype = dtype_of(x, spec.interface);
          call.reverse = reverse;
          call.device = device;
          call.stream = reinterpret_cast<void*>(stream);
          const Checker check{spec, device, call.dtype};
          const auto xs = shape_of(x, spec.interface, "x");
          const auto whs = shape_of(Wh, spec.interface, "Wh");
          if (xs.size() != 3) throw py::value_error("x must be 3-D (T, B, I)");
          if (whs.size() != 2) throw py::value_error("Wh must be 2-D (S, G*H)");
          Dims& d = call.dims;
          d.T = xs[0];
          d.B = xs[1];
          d.I = xs[2];
          if (whs[1] % cs.gates() != 0)
            throw py::value_error("Wh must have G*H columns (G = " + std::to_string(cs.gates()) + ")");
          d.H = whs[1] / cs.gates();
          if (!Wr.is_none()) {
            if (!info.takes_projection)
              throw py::value_error("Wr: the " + std::string(info.name) + " cell takes no projection");
            const auto wrs = shape_of(Wr, spec.interface, "Wr");
            if (wrs.size() != 2 || wrs[1] < 1)
              throw py::value_error("Wr must be a 2-D array (H, P) with P >= 1");
            d.P = wrs[1];
          }
          const int64_t GH = cs.gates() * d.H, S = d.state_size();
          InputViews& in = call.in;
          in.x = check.get(x, "x", {d.T, d.B, d.I});
          in.h0 = check.get(h0, "h0", {d.B, S}, true);
          in.c0 = cs.has_cell_state() ? check.get(c0, "c0", {d.B, d.H}, true) : nullptr;
          in.Wx = check.get(Wx, "Wx", {d.I, GH});
          in.Wh = check.get(Wh, "Wh", {S, GH});
          in.b = check.get(b, "b", {GH});
          in.bh = check.get(bh, "bh", {GH}, true);
          in.Wr = d.P > 0 ? check.get(Wr, "Wr", {d.H, d.P}) : nullptr;
          if (cs.peepholes) in.peepholes = check.get(peepholes, "peepholes", {3, d.H});
          in.recurrent_mask = check.get(recurrent_mask, "recurrent_mask", {d.B, S}, true);
          // lengths: a host int64 array (small; the backend copies it to the device)
          if (!lengths.is_none()) {
            if (!py::isinstance<py::array_t<int64_t>>(lengths))
              throw py::type_error("lengths must be a host (NumPy) int64 array");
            auto arr = py::reinterpret_borrow<py::array>(lengths);
            if (!(arr.flags() & py::array::c_style) || arr.ndim() != 1 || arr.shape(0) != d.B ||
                !py::isinstance<py::array_t<int64_t, py::array::c_style>>(lengths))
              throw py::value_error("lengths must be a C-contiguous int64 array of shape (B,)");
            in.lengths = static_cast<const int64_t*>(arr.data());
            for (int64_t i = 0; i < d.B; ++i)
              if (in.lengths[i] < 0 || in.lengths[i] > d.T)
                throw py::value_error("lengths[" + std::to_string(i) + "] = " +
                                      std::to_string(in.lengths[i]) + " is outside [0, T=" +
                                      std::to_string(d.T) + "]");
            handle->lengths = lengths;
            // the caller's device copy (optional): no pageable upload in the call
            in.lengths_device = static_cast<const int64_t*>(
                check.get(lengths_device, "lengths_device", {d.B}, true, false, 'i'));
            handle->lengths_device = lengths_device;
          }
          OutputViews out;
          out.y = check.get(y, "y", {d.T, d.B, S}, false, true);
          out.hT = check.get(hT, "hT", {d.B, S}, false, true);
          out.cT = cs.has_cell_state() ? check.get(cT, "cT", {d.B, d.H}, false, true) : nullptr;
          handle->backend = spec.backend;
          handle->has_bh = !bh.is_none();
          handle->arrays = {x, h0, c0, Wx, Wh, b, bh, recurrent_mask, Wr, peepholes};
          std::unique_ptr<Reserve> reserve;
          without_gil([&] { reserve = spec.backend->forward(call, out, training); });
          if (!training) return py::none();
          handle->reserve = std::move(reserve);
          return py::cast(std::move(handle));
        },
        py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("Wx"), py::arg("Wh"),
        py::arg("b"), py::arg("bh"), py::arg("lengths"), py::arg("reverse"),
        py::arg("recurrent_mask"), py::arg("linear_before_reset"), py::arg("gate_block"),
        py::arg("training"), py::arg("Wr"), py::arg("peepholes"), py::arg("y"), py::arg("hT"),
        py::arg("cT"), py::arg("device"), py::arg("stream"), py::arg("lengths_device") = py::none(),
        "One layer, one direction, on the device: writes y, hT (, cT) and returns the handle "
        "backward needs (training) or None. Arrays as rnnkit._core.forward; the outputs are "
        "allocated by the caller; stream: the caller's cudaStream_t as an int; lengths: a "
        "host int64 array, lengths_device optionally its copy on the device (int64, (B,)).");

  m.def("backward",
        [spec](const DeviceForwardHandle& handle, const py::object& dy, const py::object& dhT,
               const py::object& dcT, const py::object& dx, const py::object& dh0,
               const py::object& dc0, const py::object& dWx, const py::object& dWh,
               const py::object& db, const py::object& dbh, const py::object& dWr,
               const py::object& dpeepholes, uintptr_t stream) {
          if (!handle.reserve) throw py::value_error("this handle keeps no reserve");
          CallDesc call = handle.call;
          call.stream = reinterpret_cast<void*>(stream);
          const Dims& d = call.dims;
          const int64_t GH = call.cell.gates() * d.H, S = d.state_size();
          const bool cell_state = call.cell.has_cell_state();
          const Checker check{spec, call.device, call.dtype};
          GradViews g;
          g.dy = check.get(dy, "dy", {d.T, d.B, S}, true);
          g.dhT = check.get(dhT, "dhT", {d.B, S}, true);
          g.dcT = cell_state ? check.get(dcT, "dcT", {d.B, d.H}, true) : nullptr;
          g.dx = check.get(dx, "dx", {d.T, d.B, d.I}, false, true);
          g.dh0 = check.get(dh0, "dh0", {d.B, S}, false, true);
          g.dc0 = cell_state ? check.get(dc0, "dc0", {d.B, d.H}, false, true) : nullptr;
          g.dWx = check.get(dWx, "dWx", {d.I, GH}, false, true);
          g.dWh = check.get(dWh, "dWh", {S, GH}, false, true);
          g.db = check.get(db, "db", {GH}, false, true);
          g.dbh = handle.has_bh ? check.get(dbh, "dbh", {GH}, false, true) : nullptr;
          g.dWr = d.P > 0 ? check.get(dWr, "dWr", {d.H, d.P}, false, true) : nullptr;
          g.dpeepholes = call.cell.peepholes
                             ? check.get(dpeepholes, "dpeepholes", {3, d.H}, false, true)
                             : nullptr;
          without_gil([&] { handle.backend->backward(call, *handle.reserve, g); });
        },
        py::arg("handle"), py::arg("dy"), py::arg("dhT"), py::arg("dcT"), py::arg("dx"),
        py::arg("dh0"), py::arg("dc0"), py::arg("dWx"), py::arg("dWh"), py::arg("db"),
        py::arg("dbh"), py::arg("dWr"), py::arg("dpeepholes"), py::arg("stream"),
        "BPTT over a training forward's handle, writing the gradients into the given arrays "
        "(dc0 for an LSTM, dbh when the forward had bh, dWr / dpeepholes when it had them; "
        "others None).");
}

}  // namespace rnnkit::bindings
