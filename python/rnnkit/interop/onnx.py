"""ONNX export and import (docs/persistence.md, section ONNX).

``to_onnx(obj, path)`` writes an ONNX model computing what ``obj.forward`` computes at inference
(dropouts off): a recurrent layer (``rnnkit.nn.RNN``, ``LSTM``, ``GRU``), a
``models.SequenceClassifier`` (token ids in, class probabilities out) or a
``models.LanguageModel`` (ids and state in, logits and state out, so a decoding loop can run in
ONNX Runtime). ``from_onnx(path_or_model)`` turns an ONNX ``RNN``, ``LSTM`` or ``GRU`` node into
the rnnkit.nn layer computing the same function.

The mapping, per layer ``k`` and direction: ONNX stores ``W`` (D, G*H, I), ``R`` (D, G*H, H) and
``B`` (D, 2*G*H), directions stacked (forward first), weights as (outputs, inputs), and its gate
blocks in its own order (``_ONNX_CELLS``), so ``W[d]`` is ``Wx.T``, ``R[d]`` is ``Wh.T`` and
``B[d]`` is ``concat(b, bh)``, each with its gate blocks reordered.

Graphs are time-major inside: ONNX Runtime implements the recurrent ops only for ``layout=0``
and float32, so batch-first layers get a Transpose on each side and every graph is float32.
onnx is imported only inside the functions that need it, so ``rnnkit.interop`` imports without.
"""
from __future__ import annotations

import json as _json  # private: this module's public names are its __all__
import os as _os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from ..cells import CELLS, get_cell
from ..nn.heads import LastStep, MaxPool, MeanPool
from ..nn.recurrent import _Recurrent, recurrent_layer

__all__ = ["to_onnx", "from_onnx", "DEFAULT_OPSET", "MIN_OPSET"]

# 17: implemented by every ONNX Runtime this package supports (>= 1.17 runs up to opset 20) and
# by most other runtimes (TensorRT 8.6 stops at 17); nothing the export uses means anything
# different in later opsets (they add types, or turn ReduceMax's axes into an input, which the
# export follows). 13 is the lowest with every operator form the export writes (Unsqueeze and
# ReduceSum taking axes as an input, Softmax over one axis).
DEFAULT_OPSET = 17
MIN_OPSET = 13

# model.metadata_props key under which to_onnx describes the exported recurrent stack, so that
# from_onnx can rebuild a stacked or merged layer (one ONNX node per layer cannot say how the
# layers are joined)
_METADATA_KEY = "rnnkit.recurrent"


@dataclass(frozen=True)
class _OnnxCell:
    """How ONNX writes one rnnkit cell (rnnkit.cells): the operator, its gate-block order in
    rnnkit's gate letters, its default ``activations`` for one direction, and how the cell's
    option (``variant_option``, if any) maps onto node attributes. Export and import both read
    this table, so each fact is written once."""

    op_type: str
    gate_order: str
    activations: tuple
    variant_option: str | None = None
    variants: Mapping = field(default_factory=dict)  # option value -> attributes it sets
    attribute_defaults: Mapping = field(default_factory=dict)  # ONNX's defaults for those
    peephole_order: str = ""  # gates of P (D, 3H) in ONNX's order

    def __post_init__(self):
        object.__setattr__(self, "variants", MappingProxyType(dict(self.variants)))
        object.__setattr__(self, "attribute_defaults",
                           MappingProxyType(dict(self.attribute_defaults)))

    def attributes(self, options: dict, num_directions: int) -> dict:
        """The node attributes that express the rnnkit cell ``options``."""
        attributes = {"activations": list(self.activations)}
        if self.variant_option is not None:
            attributes.update(self.variants[options[self.variant_option]])
        attributes["activations"] = list(attributes["activations"]) * num_directions
        return attributes

    def _selecting(self, attributes: dict, num_directions: int) -> dict:
        """The attributes that select the cell's variant, ONNX's defaults filled in and the
        activation names lower-cased (ONNX names them case-insensitively)."""
        values = dict(self.attribute_defaults, activations=self.activations * num_directions)
        values.update({name: attributes[name] for name in values if name in attributes})
        activations = tuple(a.lower() for a in values["activations"])
        if len(activations) == len(self.activations):  # one direction's list serves both
            activations *= num_directions
        values["activations"] = activations
        return values

    def options(self, attributes: dict, num_directions: int, what: str) -> dict:
        """The rnnkit cell options a node's ``attributes`` mean; NotImplementedError naming the
        attributes (``what``: the node) when no option value of the cell computes them."""
        given = self._selecting(attributes, num_directions)
        for value, sets in (self.variants.items() or [(None, {})]):
            sets = dict(sets)
            sets.setdefault("activations", self.activations)
            if self._selecting(sets, num_directions) == given:
                return {} if value is None else {self.variant_option: value}
        shown = ", ".join(f"{name}={_listed(attributes[name])}" for name in given
                          if name in attributes)
        forms = [dict(sets) for sets in self.variants.values()] or [
            {"activations": self.activations}]
        supported = " or ".join(", ".join(f"{name}={_listed(v)}" for name, v in form.items())
                                for form in forms)
        raise NotImplementedError(f"{what} has {shown}: rnnkit's {self.op_type} computes "
                                  f"{supported} only")


def _listed(value):
    return list(value) if isinstance(value, tuple) else value


_ONNX_CELLS = {
    "rnn": _OnnxCell("RNN", "", ("Tanh",), variant_option="nonlinearity",
                     variants={"tanh": {"activations": ("Tanh",)},
                               "relu": {"activations": ("Relu",)}}),
    "lstm": _OnnxCell("LSTM", "iofg", ("Sigmoid", "Tanh", "Tanh"), peephole_order="iof"),
    # linear_before_reset: rnnkit's option and ONNX's attribute mean the same thing (1: the reset
    # gate multiplies the recurrent product, as PyTorch does; 0, ONNX's default: Cho et al.)
    "gru": _OnnxCell("GRU", "zrn", ("Sigmoid", "Tanh"), variant_option="linear_before_reset",
                     variants={True: {"linear_before_reset": 1},
                               False: {"linear_before_reset": 0}},
                     attribute_defaults={"linear_before_reset": 0}),
}
assert set(_ONNX_CELLS) == {cell.name for cell in CELLS}
_CELL_OF_OP = {spec.op_type: name for name, spec in _ONNX_CELLS.items()}
_DIRECTIONS = {1: "forward", 2: "bidirectional"}
# onnx.TensorProto's element types (fixed by the format); every exported graph is float32
_FLOAT, _INT32, _INT64 = 1, 6, 7
# the attributes from_onnx reads; any other attribute of the node is refused by name.
# activation_alpha/beta only parametrise activations rnnkit refuses anyway, so they are ignored
_READ_ATTRIBUTES = {"hidden_size", "direction", "layout", "activations", "linear_before_reset",
                    "activation_alpha", "activation_beta", "input_forget", "clip"}

# rnnkit's order of the rows of an LSTM's ``peepholes`` (3, H); ONNX's P holds the same gates,
# flattened, in _ONNX_CELLS["lstm"].peephole_order
_PEEPHOLE_ORDER = "ifo"


def _reorder_blocks(array, source: str, target: str, axis: int = 0) -> np.ndarray:
    """``array``'s equal gate blocks along ``axis``, from the order ``source`` to ``target``
    (strings of gate letters); unnamed gates (a single block) stay as they are."""
    if source == target:
        return np.ascontiguousarray(array)
    blocks = np.split(array, len(source), axis=axis)
    return np.concatenate([blocks[source.index(gate)] for gate in target], axis=axis)


def _peepholes_to_onnx(peepholes) -> np.ndarray:
    """An LSTM direction's ``peepholes`` (3, H), rows p_i, p_f, p_o, as one row of ONNX's ``P``
    (3H,: gates i, o, f)."""
    rows = _reorder_blocks(np.asarray(peepholes), _PEEPHOLE_ORDER,
                           _ONNX_CELLS["lstm"].peephole_order)
    return rows.reshape(-1)


def _peepholes_from_onnx(P_row) -> np.ndarray:
    """One direction's row of ONNX's ``P`` (3H,: i, o, f) as rnnkit's ``peepholes`` (3, H)."""
    rows = np.asarray(P_row).reshape(3, -1)
    return _reorder_blocks(rows, _ONNX_CELLS["lstm"].peephole_order, _PEEPHOLE_ORDER)


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError("rnnkit.interop's ONNX conversions need the onnx package, which is not "
                          "installed (pip install \"rnnkit[onnx]\")") from error
    return onnx


# ---------------------------------------------------------------------------- parameters
def _onnx_weights(level, cell) -> tuple:
    """ONNX's W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H) of one layer of a stack, float32, and
    P (D, 3H) for an LSTM with peepholes (None otherwise)."""
    def onnx_blocks(a):  # the gate blocks of a's last axis in ONNX's order
        return _reorder_blocks(np.asarray(a, np.float32), cell.gate_names,
                               _ONNX_CELLS[cell.name].gate_order, axis=-1)

    directions = level.directions
    W = np.stack([onnx_blocks(d.Wx).T for d in directions])
    R = np.stack([onnx_blocks(d.Wh).T for d in directions])
    B = np.stack([np.concatenate([onnx_blocks(d.b), onnx_blocks(d.bh)]) for d in directions])
    P = None
    if "peepholes" in directions[0].kernel_params():
        P = np.stack([_peepholes_to_onnx(np.asarray(d.peepholes, np.float32))
                      for d in directions])
    return W, R, B, P


def _rnnkit_parameters(cell, W, R, B, P=None) -> list:
    """One {Wx, Wh, b, bh} dict per direction from ONNX's W, R and B (B None: zero biases), with
    ``peepholes`` from P (D, 3H) when the node has one."""
    order, onnx_order = _ONNX_CELLS[cell.name].gate_order, cell.gate_names
    GH = W.shape[1]
    directions = []
    for d in range(W.shape[0]):
        bias = np.zeros(2 * GH, W.dtype) if B is None else B[d]
        directions.append({
            "Wx": _reorder_blocks(W[d].T, order, onnx_order, axis=-1),
            "Wh": _reorder_blocks(R[d].T, order, onnx_order, axis=-1),
            "b": _reorder_blocks(bias[:GH], order, onnx_order),
            "bh": _reorder_blocks(bias[GH:], order, onnx_order)})
        if P is not None:
            directions[-1]["peepholes"] = _peepholes_from_onnx(P[d])
    return directions


# ---------------------------------------------------------------------------- export
def _export_problems(layer) -> list:
    """What a recurrent ``layer`` computes that the export does not write as ONNX nodes."""
    problems = []
    if layer.norm is not None:
        problems.append(f"norm={layer.norm!r} (normalisation inside the recurrence has no ONNX "
                        f"recurrent operator)")
    if layer.skip is not None:
        problems.append(f"skip={layer.skip!r} (skip connections between the layers of a stack "
                        f"are not exported)")
    if getattr(layer, "proj_size", 0) > 0:
        problems.append(f"proj_size={layer.proj_size} (an LSTM with a projection is not one ONNX "
                        f"LSTM node)")
    return problems


def _check_exportable(layer):
    problems = _export_problems(layer)
    if problems:
        raise NotImplementedError(f"{type(layer).__name__} with {', '.join(problems)} cannot be "
                                  f"exported to ONNX")


class _Graph:
    """Collects the nodes, initializers, inputs and outputs of one ONNX graph, with unique
    value names (a stem plus a counter) and small integer constants shared."""

    def __init__(self, onnx, opset: int):
        self.onnx, self.opset = onnx, opset
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._used, self._constants = set(), {}

    def name(self, stem: str) -> str:
        name, n = stem, 1
        while name in self._used:
            name, n = f"{stem}_{n}", n + 1
        self._used.add(name)
        return name

    def constant(self, value, stem: str = "const") -> str:
        value = np.asarray(value)
        shared = value.dtype.kind in "iu" and value.size <= 8  # indices, axes, shapes
        key = (value.dtype.str, value.shape, value.tobytes())
        if shared and key in self._constants:
            return self._constants[key]
        name = self.name(stem)
        self.initializers.append(self.onnx.numpy_helper.from_array(value, name))
        if shared:
            self._constants[key] = name
        return name

    def op(self, op_type: str, inputs, stem: str | None = None, outputs: int = 1, **attributes):
        """Adds a node; returns its output name (a tuple of names when ``outputs`` > 1)."""
        stem = stem or op_type.lower()
        names = [self.name(stem if outputs == 1 else f"{stem}_{k}") for k in range(outputs)]
        while inputs and inputs[-1] == "":  # absent optional inputs at the end are left off
            inputs = inputs[:-1]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names,
                                                     name=self.name(f"{stem}_node"),
                                                     **attributes))
        return names[0] if outputs == 1 else tuple(names)

    def reduce(self, op_type: str, x: str, axis: int) -> str:
        # axes became an input in opset 13 for ReduceSum, in opset 18 for the others
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.constant(np.array([axis]), "axes")], keepdims=0)
        return self.op(op_type, [x], axes=[axis], keepdims=0)

    def unsqueeze(self, x: str, axis: int) -> str:
        return self.op("Unsqueeze", [x, self.constant(np.array([axis]), "axes")])

    def add_input(self, name, elem_type, shape):
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, elem_type, shape))
        self._used.add(name)
        return name

    def add_output(self, value: str, name: str, elem_type, shape):
        self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name],
                                                     name=self.name(f"{name}_node")))
        self._used.add(name)
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, elem_type, shape))

    def model(self, graph_name: str, metadata: dict):
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, graph_name, self.inputs, self.outputs,
                                  self.initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        # the lowest IR version that can carry this opset, so older runtimes load the file
        model = helper.make_model(graph, opset_imports=opsets, producer_name="rnnkit",
                                  ir_version=helper.find_min_ir_version_for(opsets))
        helper.set_model_props(model, metadata)
        return model


def _recurrent_stack(g: _Graph, layer, x: str, lengths: str, initial=None, prefix=""):
    """The nodes of the recurrent ``layer`` on the time-major ``x`` (T, B, I), ``lengths`` (B,)
    int64. ``initial``: {"h": name, "c": name} of stacked initial states (L*D, B, H), or None
    for zeros. Returns (y (T, B, output_size), {"h": (L*D, B, H), "c": ...})."""
    cell, spec = layer.cell_type, _ONNX_CELLS[layer.cell_type.name]
    D, H = layer.num_directions, layer.hidden_size
    attributes = spec.attributes(layer.cell_options, D)
    lengths32 = g.op("Cast", [lengths], "sequence_lens", to=_INT32)  # the ops take int32
    if initial is not None:
        # ONNX Runtime returns zero final states for a sequence of length 0; rnnkit returns its
        # initial state (nothing ran), so those rows are taken from the initial states
        empty = g.op("Unsqueeze", [g.op("Equal", [lengths, g.constant(np.array(0))]),
                                   g.constant(np.array([0, 2]), "axes")])
    finals = {state: [] for state in cell.state_names}
    inp = x
    for k, level in enumerate(layer.levels):
        W, R, B, P = (None if a is None else g.constant(a, f"{prefix}l{k}_{n}")
                      for a, n in zip(_onnx_weights(level, cell), ("W", "R", "B", "P")))
        states = []
        for state in cell.state_names:  # this layer's rows of the stacked initial states
            if initial is None:
                states.append("")
            else:
                states.append(g.op("Slice", [initial[state], g.constant(np.array([k * D])),
                                             g.constant(np.array([(k + 1) * D])),
                                             g.constant(np.array([0]))],
                                   f"{prefix}l{k}_{state}0"))
        peepholes = [P] if P is not None else []  # input 8, after initial_h and initial_c
        Y, *final = g.op(spec.op_type, [inp, W, R, B, lengths32, *states, *peepholes],
                         f"{prefix}l{k}_{spec.op_type.lower()}", outputs=1 + len(states),
                         hidden_size=H, direction=_DIRECTIONS[D], **attributes)
        for state, value, start in zip(cell.state_names, final, states):
            finals[state].append(value if initial is None
                                 else g.op("Where", [empty, start, value], f"{prefix}l{k}_{state}"))
        inp = _merge_directions(g, Y, layer.merge, D)
    stacked = {state: values[0] if len(values) == 1 else g.op("Concat", values, axis=0)
               for state, values in finals.items()}
    return inp, stacked


def _merge_directions(g: _Graph, Y: str, merge: str, D: int) -> str:
    """ONNX's Y (T, D, B, H) as the rnnkit layer's output (T, B, H or 2H)."""
    if D == 1:
        return g.op("Squeeze", [Y, g.constant(np.array([1]), "axes")])
    if merge == "concat":  # (T, B, 2, H) -> (T, B, 2H): forward features first
        Y = g.op("Transpose", [Y], perm=[0, 2, 1, 3])
        return g.op("Reshape", [Y, g.constant(np.array([0, 0, -1]), "shape")])
    forward, backward = (g.op("Gather", [Y, g.constant(np.array(d))], axis=1) for d in (0, 1))
    if merge == "sum":
        return g.op("Add", [forward, backward])
    if merge == "mul":
        return g.op("Mul", [forward, backward])
    total = g.op("Add", [forward, backward])  # "ave", as rnnkit computes it: 0.5 * (yf + yb)
    return g.op("Mul", [total, g.constant(np.array(0.5, np.float32))])


def _valid_mask(g: _Graph, y: str, lengths: str) -> str:
    """(T, B) bool: t < lengths[b], for the time-major ``y``."""
    T = g.op("Gather", [g.op("Shape", [y]), g.constant(np.array(0))], axis=0)
    steps = g.op("Range", [g.constant(np.array(0)), T, g.constant(np.array(1))])
    return g.op("Less", [g.unsqueeze(steps, 1), g.unsqueeze(lengths, 0)])


def _last_step(g: _Graph, y: str, lengths: str) -> str:
    """(B, F): y[lengths[b] - 1, b] of the time-major ``y``; rows of length 0 are zero already
    (rnnkit's outputs past each length are zero, and ONNX Runtime's too)."""
    last = g.op("Max", [g.op("Sub", [lengths, g.constant(np.array(1))]),
                        g.constant(np.array(0))])
    batch_major = g.op("Transpose", [y], perm=[1, 0, 2])
    return g.op("GatherND", [batch_major, g.unsqueeze(last, 1)], batch_dims=1)


def _mean_pool(g: _Graph, y: str, lengths: str) -> str:
    """(B, F): mean over valid steps, with rnnkit's weights valid / max(length, 1)."""
    valid = g.op("Cast", [_valid_mask(g, y, lengths)], to=_FLOAT)
    count = g.op("Cast", [g.op("Max", [lengths, g.constant(np.array(1))])], to=_FLOAT)
    weights = g.unsqueeze(g.op("Div", [valid, g.unsqueeze(count, 0)]), 2)
    return g.reduce("ReduceSum", g.op("Mul", [y, weights]), 0)


def _max_pool(g: _Graph, y: str, lengths: str) -> str:
    """(B, F): maximum over valid steps; zero for a sequence of length 0."""
    padded = g.unsqueeze(g.op("Not", [_valid_mask(g, y, lengths)]), 2)
    masked = g.op("Where", [padded, g.constant(np.array(-np.inf, np.float32)), y])
    largest = g.reduce("ReduceMax", masked, 0)
    empty = g.unsqueeze(g.op("Equal", [lengths, g.constant(np.array(0))]), 1)
    return g.op("Where", [empty, g.constant(np.array(0, np.float32)), largest])




def _linear(g: _Graph, x: str, linear, stem: str) -> str:
    """x @ W + b of an rnnkit.nn.Linear on the last axis of ``x``."""
    y = g.op("MatMul", [x, g.constant(np.asarray(linear.W, np.float32), f"{stem}_W")])
    if "b" in linear.parameters():
        y = g.op("Add", [y, g.constant(np.asarray(linear.b, np.float32), f"{stem}_b")])
    return y


def _embedding(g: _Graph, ids_tm: str, embed) -> str:
    W = np.array(embed.W, np.float32)
    if embed.padding_idx is not None:
        W[embed.padding_idx] = 0  # rnnkit outputs zeros there whatever the row holds
    return g.op("Gather", [g.constant(W, "embed_W"), ids_tm], axis=0)


def _lengths_input(g: _Graph) -> str:
    return g.add_input("lengths", _INT64, ["B"])  # int64, like rnnkit's; cast for the nodes


def _state_inputs(g: _Graph, layer) -> dict:
    shape = [layer.num_layers * layer.num_directions, "B", layer.hidden_size]
    return {state: g.add_input(f"{state}0", _FLOAT, shape) for state in layer.cell_type.state_names}


def _state_outputs(g: _Graph, layer, finals: dict):
    shape = [layer.num_layers * layer.num_directions, "B", layer.hidden_size]
    for state in layer.cell_type.state_names:
        g.add_output(finals[state], state, _FLOAT, shape)


def _export_recurrent(g: _Graph, layer, initial_state: bool):
    _check_exportable(layer)
    I = layer.input_size
    x = g.add_input("x", _FLOAT, ["B", "T", I] if layer.batch_first else ["T", "B", I])
    lengths = _lengths_input(g)
    initial = _state_inputs(g, layer) if initial_state else None
    x_tm = g.op("Transpose", [x], perm=[1, 0, 2]) if layer.batch_first else x
    y, finals = _recurrent_stack(g, layer, x_tm, lengths, initial)
    F = layer.output_size
    if not layer.return_sequences:
        g.add_output(_last_step(g, y, lengths), "y", _FLOAT, ["B", F])
    elif layer.batch_first:
        g.add_output(g.op("Transpose", [y], perm=[1, 0, 2]), "y", _FLOAT, ["B", "T", F])
    else:
        g.add_output(y, "y", _FLOAT, ["T", "B", F])
    _state_outputs(g, layer, finals)
    return layer


def _export_classifier(g: _Graph, model, initial_state: bool):
    if initial_state:
        raise ValueError("initial_state=True applies to recurrent layers and LanguageModel; a "
                         "SequenceClassifier starts every sequence from zero states")
    pools = {LastStep: _last_step, MeanPool: _mean_pool, MaxPool: _max_pool}
    pool = pools.get(type(model.pool))
    if pool is None:
        raise NotImplementedError(f"SequenceClassifier with a {type(model.pool).__name__} head "
                                  f"cannot be exported to ONNX (supported: LastStep, MeanPool, "
                                  f"MaxPool)")
    _check_exportable(model.rnn)
    ids = g.add_input("ids", _INT64, ["B", "T"])
    lengths = _lengths_input(g)
    x = _embedding(g, g.op("Transpose", [ids], perm=[1, 0]), model.embed)
    y, _ = _recurrent_stack(g, model.rnn, x, lengths, None, prefix="rnn_")
    logits = _linear(g, pool(g, y, lengths), model.fc, "fc")
    C = model.num_classes
    g.add_output(g.op("Softmax", [logits], axis=-1), "probabilities", _FLOAT, ["B", C])
    g.add_output(logits, "logits", _FLOAT, ["B", C])
    return model.rnn


def _export_language_model(g: _Graph, model, initial_state: bool):
    layer = model.rnn
    _check_exportable(layer)
    ids = g.add_input("ids", _INT64, ["B", "T"])
    lengths = _lengths_input(g)
    initial = _state_inputs(g, layer)
    x = _embedding(g, g.op("Transpose", [ids], perm=[1, 0]), model.embed)
    y, finals = _recurrent_stack(g, layer, x, lengths, initial, prefix="rnn_")
    logits = _linear(g, g.op("Transpose", [y], perm=[1, 0, 2]), model.fc, "fc")  # (B, T, V)
    # rnnkit's Linear zeroes the outputs at padded steps when given lengths
    valid = g.op("Cast", [g.op("Transpose", [_valid_mask(g, y, lengths)], perm=[1, 0])],
                 to=_FLOAT)
    logits = g.op("Mul", [logits, g.unsqueeze(valid, 2)])
    g.add_output(logits, "logits", _FLOAT, ["B", "T", model.vocab_size])
    _state_outputs(g, layer, finals)
    return layer


def _exporter(obj):
    from ..models.networks import LanguageModel, SequenceClassifier

    if isinstance(obj, _Recurrent):
        return _export_recurrent
    if isinstance(obj, SequenceClassifier):
        return _export_classifier
    if isinstance(obj, LanguageModel):
        return _export_language_model
    raise TypeError(f"to_onnx does not support {type(obj).__name__}; supported: rnnkit.nn.RNN, "
                    f"LSTM, GRU, rnnkit.models.SequenceClassifier and LanguageModel")


def _check_opset(opset) -> int:
    onnx = _import_onnx()
    if opset is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {newest}] (the installed onnx "
                         f"knows up to {newest}), got {opset!r}")
    return int(opset)


def _stack_description(layer) -> dict:
    """What from_onnx needs, besides the nodes' weights, to rebuild ``layer``."""
    options = {name: getattr(layer, name) for name in
               ("num_layers", "bidirectional", "merge", "batch_first", "return_sequences",
                "return_state", "dropout", "recurrent_dropout")}
    return {"cell": layer.cell_type.name, "input_size": layer.input_size,
            "hidden_size": layer.hidden_size, "options": dict(options, **layer.cell_options)}


def to_onnx(obj, path=None, *, opset=None, initial_state=False):
    """Writes ``obj`` to ``path`` as an ONNX model and returns the ``onnx.ModelProto`` (``path``
    None: only returns it). ``obj``: a recurrent layer (rnnkit.nn.RNN, LSTM, GRU), a
    ``models.SequenceClassifier`` or a ``models.LanguageModel``; the graph computes its
    inference forward (dropouts off) in float32.

    Inputs and outputs, in this order (B and T are free dimensions):

    - recurrent layer: ``x`` (B, T, I), or (T, B, I) for ``batch_first=False``; ``lengths``
      (B,) int64; with ``initial_state=True`` also ``h0`` (L*D, B, H) (and ``c0`` for LSTM).
      Returns ``y`` (what ``forward`` returns first: (B, T, output_size), time-major without
      batch_first, (B, output_size) with ``return_sequences=False``), then ``h`` (L*D, B, H) (and
      ``c``): the final states stacked in rnnkit's order (layer 0 forward, layer 0 backward,
      layer 1 forward, ...), whatever ``return_state`` says.
    - SequenceClassifier: ``ids`` (B, T) int64, ``lengths`` (B,) int64 -> ``probabilities``
      (B, num_classes), the softmax of ``logits``, which follow.
    - LanguageModel (always with its states): ``ids`` (B, T), ``lengths`` (B,), ``h0``
      (num_layers, B, H) (and ``c0``) -> ``logits`` (B, T, vocab_size), ``h`` (and ``c``): feed
      the states back with the next ids to continue.

    ``opset``: the ONNX opset (default ``DEFAULT_OPSET``, 17; at least ``MIN_OPSET``, 13).
    NotImplementedError naming what ONNX export cannot express (``norm``, ``skip``, LSTM
    ``proj_size``, peepholes); TypeError for other objects. A float64 model is written with
    its parameters rounded to float32: ONNX Runtime runs these operators in float32 only.
    """
    onnx = _import_onnx()
    opset = _check_opset(opset)
    export = _exporter(obj)
    g = _Graph(onnx, opset)
    stack = export(g, obj, bool(initial_state))
    model = g.model(f"rnnkit_{type(obj).__name__}",
                    {_METADATA_KEY: _json.dumps(_stack_description(stack))})
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, _os.fspath(path))
    return model


# ---------------------------------------------------------------------------- import
def _constants(onnx, graph) -> dict:
    """Every value the graph fixes: its initializers and the outputs of its Constant nodes."""
    values = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
    return values


def _attributes(onnx, node) -> dict:
    values = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = tuple(v.decode() if isinstance(v, bytes) else v for v in value)
        values[attribute.name] = value
    return values


@dataclass
class _ImportedNode:
    cell: object
    options: dict
    num_directions: int
    batch_first: bool
    input_size: int
    hidden_size: int
    parameters: list  # one {Wx, Wh, b, bh} per direction


def _read_node(onnx, node, constants) -> _ImportedNode:
    """What an ONNX RNN/LSTM/GRU ``node`` computes, in rnnkit's terms."""
    cell = get_cell(_CELL_OF_OP[node.op_type])
    spec, what = _ONNX_CELLS[cell.name], f"ONNX {node.op_type} node {node.name!r}"
    attributes = _attributes(onnx, node)
    unknown = sorted(set(attributes) - _READ_ATTRIBUTES)
    if unknown:
        raise NotImplementedError(f"{what} has attributes rnnkit does not know: {unknown}")
    if "clip" in attributes:
        raise NotImplementedError(f"{what} has clip={attributes['clip']}: rnnkit does not clip "
                                  f"the cell's pre-activations")
    if attributes.get("input_forget", 0):
        raise NotImplementedError(f"{what} has input_forget={attributes['input_forget']}: "
                                  f"rnnkit's LSTM does not couple the input and forget gates")
    direction = attributes.get("direction", "forward")
    if direction not in ("forward", "bidirectional"):
        raise NotImplementedError(f"{what} has direction={direction!r}: rnnkit.nn layers run "
                                  f"'forward' or 'bidirectional'")
    D = 2 if direction == "bidirectional" else 1
    options = spec.options(attributes, D, what)
    inputs = list(node.input) + [""] * (8 - len(node.input))  # X W R B lens h0 c0 P

    def constant(position, name, required=True):
        value_name = inputs[position]
        if not value_name:
            if required:
                raise ValueError(f"{what} has no input {name}")
            return None
        if value_name not in constants:
            raise ValueError(f"{what}: input {name} ({value_name!r}) must be a constant "
                             f"(an initializer or a Constant node) to become layer weights")
        array = constants[value_name]
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(f"{what}: input {name} has dtype {array.dtype}; rnnkit layers are "
                            f"float32 or float64")
        return array

    W, R, B = constant(1, "W"), constant(2, "R"), constant(3, "B", required=False)
    H = int(attributes.get("hidden_size", R.shape[-1] if R.ndim == 3 else 0))
    G = cell.num_gates
    want = {"W": (D, G * H, W.shape[-1] if W.ndim == 3 else 0), "R": (D, G * H, H),
            "B": (D, 2 * G * H)}
    for name, array in (("W", W), ("R", R), ("B", B)):
        if array is not None and array.shape != want[name]:
            raise ValueError(f"{what}: input {name} has shape {array.shape}, expected "
                             f"{want[name]} for hidden_size={H}, direction={direction!r}")
    P = constant(7, "P", required=False) if cell.name == "lstm" else None
    if P is not None:
        options["peepholes"] = True
        if P.shape != (D, 3 * H):
            raise ValueError(f"{what}: input P has shape {P.shape}, expected {(D, 3 * H)} for "
                             f"hidden_size={H}, direction={direction!r}")
    if len({a.dtype for a in (W, R, B, P) if a is not None}) > 1:
        raise TypeError(f"{what}: W, R, B and P must share one dtype")
    layout = attributes.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"{what} has layout={layout}; ONNX defines 0 and 1")
    return _ImportedNode(cell, cell.resolve_options(**options), D, layout == 1, W.shape[-1], H,
                         _rnnkit_parameters(cell, W, R, B, P))


def _load(layer, imported_nodes):
    state = {}
    for k, imported in enumerate(imported_nodes):
        for direction, parameters in zip(("fwd", "bwd"), imported.parameters):
            state.update({f"l{k}.{direction}.{name}": value for name, value in parameters.items()})
    layer.load_state_dict(state)
    return layer


def _from_description(description, nodes, imported):
    """The exported stack ``description`` (to_onnx's metadata) rebuilt with the nodes' weights."""
    cell = get_cell(description["cell"])
    options = description["options"]
    layer = recurrent_layer(cell.name)(description["input_size"], description["hidden_size"],
                                       dtype=imported[0].parameters[0]["Wx"].dtype, **options)
    problems = []
    if len(nodes) != layer.num_layers:
        problems.append(f"{len(nodes)} recurrent nodes for num_layers={layer.num_layers}")
    for node, node_info in zip(nodes, imported):
        if (node_info.cell, node_info.options, node_info.num_directions, node_info.hidden_size) \
                != (cell, layer.cell_options, layer.num_directions, layer.hidden_size):
            problems.append(f"node {node.name!r} ({node.op_type}, {node_info.options}, "
                            f"{_DIRECTIONS[node_info.num_directions]}, "
                            f"hidden_size={node_info.hidden_size})")
    if problems:
        raise ValueError(f"the graph does not match its {_METADATA_KEY!r} metadata "
                         f"({cell.name}, {options}): {'; '.join(problems)}")
    return _load(layer, imported)


def from_onnx(path_or_model, *, node=None):
    """The rnnkit.nn layer (RNN, LSTM or GRU) computing what an ONNX ``RNN``, ``LSTM`` or ``GRU``
    node computes. ``path_or_model``: a file path or an ``onnx.ModelProto``; ``node``: which
    recurrent node (its name, or its position among the graph's recurrent nodes), needed when
    the graph holds several and was not written by ``to_onnx``.

    The layer keeps the node's direction (``forward``; ``bidirectional`` with ``merge="concat"``,
    so its y (T, B, 2H) is ONNX's Y (T, 2, B, H) with the direction axis moved to the features),
    its layout (``layout=1``: ``batch_first=True``), its weights' dtype, GRU
    ``linear_before_reset`` and RNN ``activations`` (Tanh or Relu), and is built with
    ``return_state=True``. A missing B gives zero biases. The node's X, sequence_lens,
    initial_h and initial_c become ``forward``'s ``x``, ``lengths`` and ``initial_state``.
    A model written by ``to_onnx`` comes back as the exported stack (layers, merge, layout and
    the other options it recorded), with parameters equal to the exported ones.

    NotImplementedError naming what rnnkit does not implement: ``clip``, non-default
    ``activations``, ``input_forget``, ``direction="reverse"``. An LSTM node's peepholes
    (input ``P``) become the layer's ``peepholes=True``.
    """
    onnx = _import_onnx()
    if isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
    elif isinstance(path_or_model, (str, bytes, _os.PathLike)):
        model = onnx.load(_os.fspath(path_or_model))
    else:
        raise TypeError(f"from_onnx needs a path or an onnx.ModelProto, got "
                        f"{type(path_or_model).__name__}")
    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in _CELL_OF_OP and n.domain in ("", "ai.onnx")]
    if not nodes:
        raise ValueError(f"the graph has no RNN, LSTM or GRU node (its operators: "
                         f"{sorted({n.op_type for n in graph.node})})")
    constants = _constants(onnx, graph)
    description = {p.key: p.value for p in model.metadata_props}.get(_METADATA_KEY)
    if node is None and description is not None:
        return _from_description(_json.loads(description), nodes,
                                 [_read_node(onnx, n, constants) for n in nodes])
    if node is None:
        if len(nodes) > 1:
            raise ValueError(f"the graph has {len(nodes)} recurrent nodes "
                             f"{[n.name for n in nodes]}; choose one with node= (a name or a "
                             f"position)")
        chosen = nodes[0]
    elif isinstance(node, str):
        named = [n for n in nodes if n.name == node]
        if not named:
            raise ValueError(f"node={node!r}: the graph's recurrent nodes are "
                             f"{[n.name for n in nodes]}")
        chosen = named[0]
    elif isinstance(node, (int, np.integer)) and not isinstance(node, bool) \
            and -len(nodes) <= node < len(nodes):
        chosen = nodes[node]
    else:
        raise ValueError(f"node must be a recurrent node's name or a position in "
                         f"[0, {len(nodes)}), got {node!r}")
    imported = _read_node(onnx, chosen, constants)
    layer = recurrent_layer(imported.cell.name)(
        imported.input_size, imported.hidden_size, bidirectional=imported.num_directions == 2,
        batch_first=imported.batch_first, return_state=True,
        dtype=imported.parameters[0]["Wx"].dtype, **imported.options)
    return _load(layer, [imported])
