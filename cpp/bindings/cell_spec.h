// The one check of a call's cell arguments, shared by the CPU bindings (recurrent.cpp) and the
// device backends' (device_recurrent.cpp): the cell's name, its options, a gate order.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "rnnkit/cells.h"

namespace rnnkit::bindings {

namespace py = pybind11;

inline CellSpec make_spec(const std::string& cell, bool linear_before_reset,
                   const std::vector<int>& gate_block, bool peepholes) {
  const CellInfo* info = find_cell(cell);
  if (!info) throw py::value_error("cell must be " + cell_names() + ", got '" + cell + "'");
  CellSpec spec;
  spec.kind = info->kind;
  spec.linear_before_reset = linear_before_reset;
  if (peepholes && !info->takes_peepholes)
    throw py::value_error("peepholes: the " + std::string(info->name) + " cell has none");
  spec.peepholes = peepholes;
  const int G = info->gates;
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

}  // namespace rnnkit::bindings
