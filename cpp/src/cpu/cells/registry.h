// The CPU backend's cell registry: which policy computes each entry of the cell table
// (rnnkit/cells.h), options included. The only place the CPU backend branches on a cell.
#pragma once

#include <stdexcept>

#include "cpu/cells/gru.h"
#include "cpu/cells/lstm.h"
#include "cpu/cells/rnn.h"

namespace rnnkit::cpu {

// Calls f(Policy{}) with the policy of spec's cell and returns what it returns.
template <class F>
decltype(auto) with_cell_policy(const CellSpec& spec, F&& f) {
  switch (spec.kind) {
    case CellKind::RnnTanh: return f(RnnPolicy<false>{});
    case CellKind::RnnRelu: return f(RnnPolicy<true>{});
    case CellKind::Lstm: return spec.peepholes ? f(LstmPolicy<true>{}) : f(LstmPolicy<false>{});
    case CellKind::Gru:
      return spec.linear_before_reset ? f(GruPolicy<true>{}) : f(GruPolicy<false>{});
  }
  throw std::logic_error("cell kind without a CPU policy");
}

}  // namespace rnnkit::cpu
