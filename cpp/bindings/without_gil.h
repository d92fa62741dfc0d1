// Runs a core call with the GIL released. The core's thread pool starts inside such calls;
// when it could not start every thread it was asked for, the warning it left is raised here,
// on the calling thread with the GIL held (never from a pool thread).
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "rnnkit/runtime.h"

namespace rnnkit::bindings {

namespace py = pybind11;

inline void warn_short_thread_pool() {
  const std::string message = take_thread_warning();
  if (!message.empty() && PyErr_WarnEx(PyExc_RuntimeWarning, message.c_str(), 1) < 0)
    throw py::error_already_set();  // a warnings filter made it an error
}

template <typename F>
void without_gil(F&& f) {
  try {
    py::gil_scoped_release release;
    f();
  } catch (...) {
    // Still warn (the shortfall may be why the call failed), but the call's own error wins
    // over a warning that a filter turned into an error.
    try {
      warn_short_thread_pool();
    } catch (py::error_already_set&) {
    }
    throw;
  }
  warn_short_thread_pool();
}

}  // namespace rnnkit::bindings
