// The cell table behind rnnkit/cells.h. Backend-neutral: it says what a cell is, not how a
// backend computes it (that is the backend's policy, e.g. cpu/cells/*.h).
#include "rnnkit/cells.h"

#include <iterator>
#include <stdexcept>

namespace rnnkit {
namespace {

const CellInfo kCells[] = {
    // kind, name, gates, cell state, gate order, peepholes, projection
    {CellKind::RnnTanh, "rnn_tanh", 1, false, "", false, false},
    {CellKind::RnnRelu, "rnn_relu", 1, false, "", false, false},
    {CellKind::Lstm, "lstm", 4, true, "ifgo", true, true},
    {CellKind::Gru, "gru", 3, false, "rzn", false, false},
};

}  // namespace

std::vector<CellInfo> all_cells() { return {std::begin(kCells), std::end(kCells)}; }

const CellInfo* find_cell(const std::string& name) {
  for (const CellInfo& c : kCells)
    if (name == c.name) return &c;
  return nullptr;
}

const CellInfo& cell_info(CellKind kind) {
  for (const CellInfo& c : kCells)
    if (c.kind == kind) return c;
  throw std::logic_error("cell kind missing from the cell table");
}

std::string cell_names() {
  std::string out;
  for (const CellInfo& c : kCells) out += (out.empty() ? "'" : ", '") + std::string(c.name) + "'";
  return out;
}

}  // namespace rnnkit
