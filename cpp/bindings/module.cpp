// The extension module only gathers the op families; each lives in its own binding file.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace rnnkit::bindings {
void runtime_init(py::module_& m);
void recurrent_init(py::module_& m);
void embedding_init(py::module_& m);
void linalg_init(py::module_& m);
}  // namespace rnnkit::bindings

PYBIND11_MODULE(_core, m) {
  m.doc() = "rnnkit C++ core (use the rnnkit Python package, not this module directly)";
  rnnkit::bindings::runtime_init(m);
  rnnkit::bindings::recurrent_init(m);
  rnnkit::bindings::embedding_init(m);
  rnnkit::bindings::linalg_init(m);
}
