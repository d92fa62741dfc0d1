"""PyTorch <-> rnnkit.nn conversions (docs/persistence.md).

``from_torch(module)`` turns a ``torch.nn.RNN``, ``LSTM``, ``GRU``, ``Embedding`` or ``Linear``
into the rnnkit.nn layer that computes the same function; ``to_torch(layer)`` goes the other way;
``load_torch_state_dict(layer, state_dict)`` loads a bare torch state dict (tensors or arrays)
into an existing layer. ``states_from_torch`` / ``states_to_torch`` convert recurrent states
between torch's stacked ``h`` (num_layers * num_directions, B, H) (an ``(h, c)`` pair for LSTM)
and rnnkit's list of per-layer-and-direction states; both use the same layer-major order
(layer 0 forward, layer 0 backward, layer 1 forward, ...).

Why the mapping is a transpose and nothing else: rnnkit's gate blocks are in torch's order
(LSTM i, f, g, o; GRU r, z, n with the reset gate applied after the recurrent product, rnnkit's
``linear_before_reset=True``), and rnnkit stores weights as (inputs, outputs) where torch stores
(outputs, inputs): ``weight_ih_l{k}[_reverse]`` is ``l{k}.{fwd|bwd}.Wx.T``, ``weight_hh`` is
``Wh.T``, ``bias_ih`` is ``b`` and ``bias_hh`` is ``bh``; ``Linear.weight`` is ``W.T``.

``bias=False``: rnnkit's recurrent layers always own ``b`` and ``bh``, so a bias-free torch
module becomes a layer with zero biases and ``layer.torch_bias = False``, which ``to_torch``
reads to rebuild ``bias=False``. rnnkit cannot freeze those biases: if training has moved them
off zero, ``to_torch`` keeps them (``bias=True``, with a warning) rather than change the function.

torch is imported only inside the functions that need it, so ``rnnkit.interop`` imports
without it.
"""
from __future__ import annotations

import warnings as _warnings  # private: this module's public names are its __all__

import numpy as np

from ..cells import CELLS
from ._lookup import supported_class_name as _supported_class_name
from ..nn.layers import Embedding, Linear
from ..nn.recurrent import _Recurrent, recurrent_layer

__all__ = ["from_torch", "to_torch", "load_torch_state_dict", "states_from_torch",
           "states_to_torch"]

SUPPORTED_TORCH_MODULES = ("RNN", "LSTM", "GRU", "Embedding", "Linear")

# rnnkit parameter of one direction -> its torch name stem and whether torch stores it transposed;
# in torch's state-dict order within a direction
_RECURRENT_PARAMETERS = (("Wx", "weight_ih", True), ("Wh", "weight_hh", True),
                         ("b", "bias_ih", False), ("bh", "bias_hh", False))
_DIRECTION_SUFFIXES = (("fwd", ""), ("bwd", "_reverse"))
# an LSTM's projection (proj_size > 0): torch's weight_hr (P, H) is Wr.T, after bias_hh
_PROJECTION = ("Wr", "weight_hr", True)
# the constructor options a cell shares with torch, under the same names
_TORCH_OPTIONS = {"rnn": ("nonlinearity",), "lstm": ("proj_size",), "gru": ()}


def _import_torch():
    try:
        import torch
    except ImportError as error:
        raise ImportError("rnnkit.interop's PyTorch conversions need torch, which is not "
                          "installed (pip install torch)") from error
    return torch


def _numpy_dtype(torch_dtype):
    torch = _import_torch()
    dtypes = {torch.float32: np.float32, torch.float64: np.float64}
    if torch_dtype not in dtypes:
        raise TypeError(f"rnnkit layers are float32 or float64; this module's parameters are "
                        f"{torch_dtype} (convert it with .float() or .double() first)")
    return dtypes[torch_dtype]


def _as_array(value, name: str) -> np.ndarray:
    """A state-dict entry as an ndarray: torch tensors (any device, with or without grad) are
    detached and copied to the CPU, anything else goes through np.asarray."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"state_dict[{name!r}] must be numeric, got dtype {array.dtype}")
    return array


# ---------------------------------------------------------------------------- name mappings
def _recurrent_mapping(layer, bias: bool):
    """[(rnnkit name, torch name, transposed)] for every parameter of the recurrent ``layer``,
    in torch's state-dict order (layer, direction, weight_ih, weight_hh, bias_ih, bias_hh)."""
    mapping = []
    for k in range(layer.num_layers):
        for direction, suffix in _DIRECTION_SUFFIXES[:layer.num_directions]:
            projected = getattr(layer, "proj_size", 0) > 0
            for ours, stem, transposed in _RECURRENT_PARAMETERS + (_PROJECTION,) * projected:
                if stem.startswith("bias") and not bias:
                    continue
                mapping.append((f"l{k}.{direction}.{ours}", f"{stem}_l{k}{suffix}", transposed))
    return mapping


def _layer_mapping(layer, bias: bool):
    """[(rnnkit name, torch name, transposed)] for a layer torch can express."""
    if isinstance(layer, _Recurrent):
        return _recurrent_mapping(layer, bias)
    if isinstance(layer, Linear):
        return [("W", "weight", True)] + ([("b", "bias", False)] if bias else [])
    if isinstance(layer, Embedding):
        return [("W", "weight", False)]
    raise TypeError(f"no PyTorch equivalent for rnnkit layer {type(layer).__name__}; supported: "
                    f"rnnkit.nn.RNN, LSTM, GRU, Embedding and Linear")


def _torch_incompatibilities(layer) -> list:
    """What makes a recurrent ``layer``'s parameters mean something torch cannot compute."""
    problems = []
    if layer.norm is not None:
        problems.append(f"norm={layer.norm!r}")
    if layer.skip is not None:
        problems.append(f"skip={layer.skip!r}")
    if layer.bidirectional and layer.merge != "concat":
        problems.append(f"merge={layer.merge!r} (torch concatenates the directions)")
    if not layer.cell_options.get("linear_before_reset", True):
        problems.append("linear_before_reset=False (torch's GRU applies the reset gate after "
                        "the recurrent product)")
    if layer.cell_options.get("peepholes"):
        problems.append("peepholes=True (torch's LSTM has no peephole connections)")
    return problems


def _check_torch_expressible(layer, *, training_options: bool):
    problems = _torch_incompatibilities(layer) if isinstance(layer, _Recurrent) else []
    if training_options and isinstance(layer, _Recurrent) and layer.recurrent_dropout > 0:
        problems.append(f"recurrent_dropout={layer.recurrent_dropout} (torch has no variational "
                        f"recurrent dropout)")
    if problems:
        raise ValueError(f"{type(layer).__name__} with {', '.join(problems)} has no PyTorch "
                         f"equivalent")


def _layer_has_bias(layer) -> bool:
    if isinstance(layer, Linear):
        return "b" in layer.parameters()
    return getattr(layer, "torch_bias", True)


# ---------------------------------------------------------------------------- state dicts
def load_torch_state_dict(layer, state_dict) -> None:
    """Loads a bare PyTorch state dict (the ``state_dict()`` of a torch.nn.RNN, LSTM, GRU,
    Embedding or Linear; tensors or NumPy arrays) into the rnnkit.nn ``layer`` of the same
    structure, in place. Keys must match exactly (ValueError listing missing and unexpected
    ones, or naming an entry of the wrong shape); values are cast to the layer's dtype.
    A recurrent state dict without ``bias_*`` entries (torch's bias=False) zeroes ``b`` and
    ``bh`` and sets ``layer.torch_bias = False``. A projection LSTM's ``weight_hr_l*`` (torch's
    proj_size > 0) needs a layer with the same ``proj_size``. Needs torch only if the values
    are tensors."""
    if not hasattr(state_dict, "keys"):
        raise TypeError(f"state_dict must be a mapping of names to tensors or arrays, got "
                        f"{type(state_dict).__name__}")
    if not isinstance(layer, (_Recurrent, Linear, Embedding)):
        _layer_mapping(layer, True)  # raises the TypeError naming the layer
    if isinstance(layer, _Recurrent):
        _check_torch_expressible(layer, training_options=False)
        bias = any(name.startswith("bias") for name in state_dict)
    else:
        bias = _layer_has_bias(layer)
    mapping = _layer_mapping(layer, bias)
    expected = [torch_name for _, torch_name, _ in mapping]
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    if missing or unexpected:
        raise ValueError(f"state_dict does not match this {type(layer).__name__}: missing "
                         f"{missing}, unexpected {unexpected}")
    own = layer.parameters()
    converted = {}
    for ours, torch_name, transposed in mapping:
        value = _as_array(state_dict[torch_name], torch_name)
        want = own[ours].shape[::-1] if transposed else own[ours].shape
        if value.shape != want:
            raise ValueError(f"state_dict[{torch_name!r}] has shape {tuple(value.shape)} but this "
                             f"{type(layer).__name__} needs {tuple(want)}")
        converted[ours] = value.T if transposed else value
    if isinstance(layer, Embedding) and layer.padding_idx is not None \
            and np.any(converted["W"][layer.padding_idx] != 0):
        # torch outputs whatever the padding row holds; rnnkit's padding outputs are always zero
        raise ValueError(f"row padding_idx={layer.padding_idx} of the embedding weight is not "
                         f"zero: rnnkit's padding_idx outputs zeros, so the layers would differ")
    for ours, array in own.items():
        if ours not in converted:  # the biases of a bias-free recurrent module
            converted[ours] = np.zeros_like(array)
    layer.load_state_dict(converted)
    if isinstance(layer, _Recurrent):
        layer.torch_bias = bias


def _torch_state_dict(layer, bias: bool):
    """The state dict (NumPy arrays, torch's names and order) of the torch twin of ``layer``."""
    own = layer.parameters()
    return {torch_name: np.ascontiguousarray(own[ours].T if transposed else own[ours])
            for ours, torch_name, transposed in _layer_mapping(layer, bias)}


# ---------------------------------------------------------------------------- modules
def _torch_class_of(module):
    """The name in SUPPORTED_TORCH_MODULES of the torch.nn class ``module`` is an instance of."""
    torch = _import_torch()
    return _supported_class_name(module, torch.nn, "torch.nn", torch.nn.Module,
                                SUPPORTED_TORCH_MODULES, "from_torch")


def from_torch(module):
    """The rnnkit.nn layer equivalent to the torch ``module`` (RNN, LSTM, GRU, Embedding or
    Linear), with a copy of its parameters and every constructor option carried over:
    num_layers, bidirectional, batch_first, dropout, bias, nonlinearity, LSTM proj_size, dtype
    (float32 or float64); Embedding's padding_idx. Recurrent layers are built with
    ``return_state=True``, so ``forward`` returns (output, final states) as torch does (states
    in rnnkit's list form, see ``states_to_torch``). NotImplementedError for options rnnkit
    lacks (Embedding max_norm and scale_grad_by_freq); TypeError naming any other module
    type."""
    kind = _torch_class_of(module)
    if kind == "Linear":
        layer = Linear(module.in_features, module.out_features, bias=module.bias is not None,
                       dtype=_numpy_dtype(module.weight.dtype))
    elif kind == "Embedding":
        if module.max_norm is not None:
            raise NotImplementedError(f"Embedding with max_norm={module.max_norm} is not "
                                      f"supported: rnnkit does not renormalise rows on lookup")
        if module.scale_grad_by_freq:
            raise NotImplementedError("Embedding with scale_grad_by_freq=True is not supported")
        layer = Embedding(module.num_embeddings, module.embedding_dim,
                          padding_idx=module.padding_idx,
                          dtype=_numpy_dtype(module.weight.dtype))
    else:
        cell = next(cell for cell in CELLS if cell.torch_module == kind)
        options = {name: getattr(module, name) for name in _TORCH_OPTIONS[cell.name]}
        layer = recurrent_layer(cell.name)(
            module.input_size, module.hidden_size, module.num_layers,
            bidirectional=module.bidirectional, batch_first=module.batch_first,
            dropout=module.dropout, return_state=True,
            dtype=_numpy_dtype(module.weight_ih_l0.dtype), **options)
    load_torch_state_dict(layer, module.state_dict())
    return layer


def to_torch(layer):
    """The torch.nn module equivalent to the rnnkit.nn ``layer`` (RNN, LSTM, GRU, Embedding or
    Linear), with a copy of its parameters; ``to_torch(from_torch(m)).state_dict()`` equals
    ``m.state_dict()`` exactly. ValueError for a recurrent layer with options torch lacks
    (norm, skip, a merge other than concat, recurrent_dropout, GRU linear_before_reset=False,
    LSTM peepholes);
    TypeError for other layers. The module is returned in torch's default (training) mode."""
    torch = _import_torch()
    _layer_mapping(layer, True)  # the TypeError for layers without a torch twin
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[layer.dtype]
    bias = _layer_has_bias(layer)
    if isinstance(layer, Linear):
        module = torch.nn.Linear(layer.in_features, layer.out_features, bias=bias, dtype=dtype)
    elif isinstance(layer, Embedding):
        module = torch.nn.Embedding(layer.num_embeddings, layer.dim,
                                    padding_idx=layer.padding_idx, dtype=dtype)
    else:
        _check_torch_expressible(layer, training_options=True)
        if not bias and any(np.any(array != 0) for name, array in layer.parameters().items()
                            if name.rsplit(".", 1)[-1] in ("b", "bh")):
            _warnings.warn(f"{type(layer).__name__} came from a torch module with bias=False but "
                          f"its biases are no longer zero (trained in rnnkit?); the torch module "
                          f"gets bias=True to compute the same function", UserWarning,
                          stacklevel=2)
            bias = True
        options = {name: layer.cell_options[name] for name in _TORCH_OPTIONS[layer.cell_type.name]}
        module = getattr(torch.nn, layer.cell_type.torch_module)(
            layer.input_size, layer.hidden_size, layer.num_layers, bias=bias,
            batch_first=layer.batch_first, dropout=layer.dropout,
            bidirectional=layer.bidirectional, dtype=dtype, **options)
    state = {name: torch.from_numpy(array)
             for name, array in _torch_state_dict(layer, bias).items()}
    module.load_state_dict(state, strict=True)
    return module


# ---------------------------------------------------------------------------- states
def states_from_torch(hx) -> list:
    """torch's recurrent state, ``h`` (num_layers * num_directions, B, H) or LSTM's ``(h, c)``,
    as rnnkit's ``initial_state`` list: entry k is ``h[k]`` or ``(h[k], c[k])`` (same
    layer-major order on both sides). Tensors or arrays; None stays None."""
    if hx is None:
        return None
    if isinstance(hx, tuple):  # torch's LSTM state; a list would be rnnkit's own format
        if len(hx) != 2:
            raise ValueError(f"an LSTM state must be an (h, c) pair, got {len(hx)} entries")
        h, c = (_stacked_state(part, name) for part, name in zip(hx, ("h", "c")))
        if h.shape[:2] != c.shape[:2]:  # h is P wide with proj_size, c H wide
            raise ValueError(f"h and c must have the same shape in their first two dimensions "
                             f"(num_layers * num_directions, B), got {h.shape} and {c.shape}")
        return [(np.ascontiguousarray(h[k]), np.ascontiguousarray(c[k])) for k in range(len(h))]
    h = _stacked_state(hx, "h")
    return [np.ascontiguousarray(h[k]) for k in range(len(h))]


def _stacked_state(value, name):
    array = _as_array(value, name)
    if array.ndim != 3:
        raise ValueError(f"torch's {name} must be 3-D (num_layers * num_directions, B, H), got "
                         f"shape {array.shape}")
    return array


def states_to_torch(states):
    """rnnkit's list of final states (``return_state=True``) as torch's ``h_n`` tensor
    (num_layers * num_directions, B, H), or ``(h_n, c_n)`` for LSTM states."""
    torch = _import_torch()
    if not isinstance(states, (list, tuple)) or not states:
        raise ValueError(f"states must be a non-empty list of rnnkit states, got "
                         f"{type(states).__name__}")
    if isinstance(states[0], tuple):
        return tuple(torch.from_numpy(np.stack([state[j] for state in states]))
                     for j in range(2))
    return torch.from_numpy(np.stack(states))
