// The cells the core knows, each described once: its name, gate count and order, and state
// structure. Bindings and backends look cells up here instead of branching on a cell's name;
// a new cell adds one entry to the table in cpp/src/cells.cpp and one policy per backend.
#pragma once

#include <string>
#include <vector>

namespace rnnkit {

enum class CellKind { RnnTanh, RnnRelu, Lstm, Gru };

constexpr int kMaxGates = 4;

struct CellInfo {
  CellKind kind;
  const char* name;        // as the Python API spells it: "rnn_tanh", "lstm", ...
  int gates;               // G: H-wide column blocks of Wx, Wh, b and bh
  bool has_cell_state;     // carries c besides h (LSTM): c0, cT, dc0, dcT exist
  const char* gate_names;  // canonical gate order, one letter per gate ("ifgo"; "" for RNN)
  bool takes_peepholes;    // accepts diagonal peephole weights p_i, p_f, p_o (LSTM)
  bool takes_projection;   // accepts an output projection h_t = m_t @ Wr (LSTM)
};

// Every entry, in table order.
std::vector<CellInfo> all_cells();
// The entry named `name`, or nullptr when there is none.
const CellInfo* find_cell(const std::string& name);
const CellInfo& cell_info(CellKind kind);
// Every cell's name, quoted and comma-separated, for error messages.
std::string cell_names();

// A cell with its options, as one call uses it.
struct CellSpec {
  CellKind kind = CellKind::Lstm;
  // GRU only: true applies the reset gate after the recurrent product (PyTorch/cuDNN),
  // false before it (Cho et al. 2014, ONNX default).
  bool linear_before_reset = true;
  // gate_block[k]: which H-wide column block of Wx/Wh/b holds canonical gate k
  // (LSTM i,f,g,o; GRU r,z,n). Identity by default; lets callers with another gate order
  // (e.g. the classic NumPy LSTM's i,f,o,g) use the kernels without copying weights.
  int gate_block[kMaxGates] = {0, 1, 2, 3};
  // LSTM only: i and f see c_{t-1}, o sees c_t, through diagonal weights (Gers & Schmidhuber;
  // ONNX's P input). The weights are indexed by canonical gate, whatever gate_block says.
  bool peepholes = false;

  int gates() const { return cell_info(kind).gates; }
  bool has_cell_state() const { return cell_info(kind).has_cell_state; }
};

}  // namespace rnnkit
