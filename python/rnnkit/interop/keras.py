"""Keras 3 <-> rnnkit.nn conversions (docs/persistence.md).

``from_keras(layer)`` turns a built ``keras.layers.SimpleRNN``, ``LSTM``, ``GRU``,
``Bidirectional`` (wrapping one of those), ``Embedding`` or ``Dense`` into the rnnkit.nn layer
that computes the same function; ``to_keras(layer)`` goes the other way and returns a built
Keras layer holding a copy of the weights.

The mapping, one layer and direction at a time: Keras stores ``kernel`` (I, G*H) and
``recurrent_kernel`` (H, G*H) with the inputs first, as rnnkit's ``Wx`` and ``Wh`` do, so only
the order of the H-wide gate blocks differs (``_KERAS_RECURRENT``: LSTM i, f, c, o is rnnkit's
i, f, g, o; GRU z, r, h is rnnkit's r, z, n with the first two blocks swapped). Keras has one
``bias`` (G*H,), which is rnnkit's ``b`` with ``bh`` zero (``to_keras`` writes ``b + bh``),
except the GRU with ``reset_after=True`` (rnnkit's ``linear_before_reset=True``), whose bias
(2, 3*H) holds the input bias ``b`` and the recurrent bias ``bh``. ``Dense.kernel`` is
``Linear.W`` and ``Embedding.embeddings`` is ``Embedding.W``, untransposed.

``use_bias=False``: rnnkit's layers with biases always own them, so a bias-free Keras
recurrent layer becomes one with zero ``b`` and ``bh`` and ``layer.keras_use_bias = False``,
which ``to_keras`` reads to rebuild ``use_bias=False``. If training in rnnkit has moved those
biases off zero, ``to_keras`` keeps them (``use_bias=True``, with a warning) rather than change
the function. A bias-free ``Dense`` is a bias-free ``Linear``.

Keras is imported only inside the functions that need it, so ``rnnkit.interop`` imports
without it. Keras 3 reads its backend once, at its first import: if Keras is not imported yet
and ``KERAS_BACKEND`` is unset, these functions set it to ``"torch"`` (``os.environ.setdefault``)
before importing Keras, because the default backend, TensorFlow, is usually not installed next
to rnnkit. Set ``KERAS_BACKEND`` yourself, or import Keras first, to use another backend.
"""
from __future__ import annotations

import os
import sys
import warnings as _warnings  # private: this module's public names are its __all__
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from ..cells import get_cell
from ..nn.layers import Embedding, Linear
from ..nn.recurrent import _Recurrent, recurrent_layer
from ._lookup import supported_class_name as _supported_class_name

__all__ = ["from_keras", "to_keras"]

SUPPORTED_KERAS_LAYERS = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "Embedding", "Dense")


@dataclass(frozen=True)
class _KerasRecurrent:
    """How Keras stores one rnnkit cell: its keras.layers class, the order of its gate blocks
    (in rnnkit's gate letters), the Keras option that carries an rnnkit cell option (both take
    the same values), and the Keras options rnnkit computes only at one value."""

    cell: str  # the rnnkit.cells name
    layer: str  # the keras.layers class
    gate_order: str  # Keras's column blocks, left to right, named by rnnkit's gate letters
    option: tuple = ()  # (Keras config key, rnnkit cell option)
    fixed: Mapping = field(default_factory=dict)  # Keras config key -> the value rnnkit computes

    def __post_init__(self):
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))


_GATED = {"activation": "tanh", "recurrent_activation": "sigmoid"}
_KERAS_RECURRENT = (
    _KerasRecurrent("rnn", "SimpleRNN", "", option=("activation", "nonlinearity")),
    _KerasRecurrent("lstm", "LSTM", "ifgo", fixed=_GATED),
    _KerasRecurrent("gru", "GRU", "zrn", option=("reset_after", "linear_before_reset"),
                    fixed=_GATED),
)
_BY_CELL = {spec.cell: spec for spec in _KERAS_RECURRENT}
_MERGE_MODES = ("concat", "sum", "mul", "ave")  # Keras's and rnnkit's spelling alike


def _import_keras():
    if "keras" not in sys.modules:
        # Keras fixes its backend at first import, and its default (TensorFlow) is rarely there
        os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ModuleNotFoundError as error:
        if error.name != "keras":
            raise ImportError(f"importing keras failed with KERAS_BACKEND="
                              f"{os.environ.get('KERAS_BACKEND')!r}: {error} (install that "
                              f"backend or set KERAS_BACKEND to one that is installed)") from error
        raise ImportError("rnnkit.interop's Keras conversions need Keras 3, which is not "
                          "installed (pip install \"keras>=3\")") from error
    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError(f"rnnkit.interop's Keras conversions need Keras 3, found "
                          f"keras {keras.__version__} (pip install \"keras>=3\")")
    return keras


def _numpy(keras, value) -> np.ndarray:
    """A private, writable copy of a Keras variable or tensor."""
    tensor = keras.ops.convert_to_tensor(value)
    if hasattr(tensor, "detach"):  # torch backend: Keras's own conversion warns under NumPy 2
        return tensor.detach().cpu().numpy().copy()
    return np.array(keras.ops.convert_to_numpy(tensor))


def _numpy_dtype(layer):
    policy = layer.dtype_policy
    if policy.compute_dtype != policy.variable_dtype or policy.variable_dtype not in (
            "float32", "float64"):
        raise TypeError(f"rnnkit layers are float32 or float64; {layer.name!r} has the dtype "
                        f"policy {policy.name!r} (build it with dtype='float32' or 'float64')")
    return np.dtype(policy.variable_dtype)


def _reorder(array, source: str, target: str, H: int) -> np.ndarray:
    """``array`` with its H-wide column blocks (last axis), named left to right by the gate
    letters ``source``, rearranged into the order ``target``."""
    if source == target:
        return array
    return np.concatenate([array[..., k * H:(k + 1) * H]
                           for k in (source.index(gate) for gate in target)], axis=-1)


def _unsupported(layer, option, value, why):
    return NotImplementedError(f"keras.layers.{type(layer).__name__} with {option}={value!r} "
                               f"is not supported: {why}")


def _check_built(layer):
    if not layer.built:
        raise ValueError(f"the Keras layer {layer.name!r} is not built, so it has no weights yet: "
                         f"call it on data or call layer.build(input_shape) first")


def _check_not_quantized(layer):
    mode = getattr(layer, "quantization_mode", None)
    if mode is not None:
        raise _unsupported(layer, "quantization_mode", mode, "rnnkit has float32 and float64 "
                           "weights only (convert the layer before quantizing it)")


# ---------------------------------------------------------------------------- from Keras
def _keras_recurrent_spec(keras, layer) -> _KerasRecurrent:
    for spec in _KERAS_RECURRENT:
        if isinstance(layer, getattr(keras.layers, spec.layer)):
            return spec
    raise TypeError(f"from_keras does not support {type(layer).__name__} inside Bidirectional; "
                    f"supported: keras.layers.SimpleRNN, LSTM and GRU")


def _direction_options(layer, spec: _KerasRecurrent) -> dict:
    """The rnnkit cell options of the Keras recurrent ``layer`` (one direction); raises for
    options rnnkit does not compute."""
    config = layer.get_config()
    if config["stateful"]:
        raise _unsupported(layer, "stateful", True, "rnnkit layers keep no state between calls "
                           "(convert it with stateful=False and pass the carried states as "
                           "initial_state)")
    for key, value in spec.fixed.items():
        if config[key] != value:
            raise _unsupported(layer, key, config[key], f"rnnkit's {spec.cell.upper()} computes "
                               f"{key}={value!r} only")
    if not spec.option:
        return {}
    key, ours = spec.option
    allowed = get_cell(spec.cell).options[ours]
    if config[key] not in allowed:
        raise _unsupported(layer, key, config[key], f"rnnkit's {spec.cell.upper()} computes "
                           f"{key}={' or '.join(map(repr, allowed))} only")
    return {ours: config[key]}


def _direction_params(keras, layer, spec: _KerasRecurrent, dtype) -> dict:
    """{Wx, Wh, b, bh} of one Keras recurrent layer, in rnnkit's gate order."""
    cell = layer.cell
    H, order = cell.units, get_cell(spec.cell).gate_names
    Wx = _reorder(_numpy(keras, cell.kernel), spec.gate_order, order, H)
    Wh = _reorder(_numpy(keras, cell.recurrent_kernel), spec.gate_order, order, H)
    b = bh = np.zeros(Wx.shape[1], dtype)
    if cell.use_bias:
        bias = _reorder(_numpy(keras, cell.bias), spec.gate_order, order, H)
        b, bh = (bias[0], bias[1]) if bias.ndim == 2 else (bias, bh)  # (2, 3H): reset_after GRU
    return {"Wx": Wx, "Wh": Wh, "b": b, "bh": bh}


def _recurrent_from_keras(keras, layer):
    if isinstance(layer, keras.layers.Bidirectional):
        if layer.merge_mode is None:
            raise _unsupported(layer, "merge_mode", None, "rnnkit merges the two directions; "
                               "use merge_mode='concat' and split the last axis in halves")
        directions = [layer.forward_layer, layer.backward_layer]
        if directions[0].go_backwards:
            raise _unsupported(layer, "layer.go_backwards", True, "rnnkit's first direction "
                               "runs forwards (swap layer and backward_layer)")
    else:
        directions = [layer]
        if layer.go_backwards:
            raise _unsupported(layer, "go_backwards", True, "rnnkit's one-direction layers run "
                               "forwards (reverse the time axis of the input instead)")
    first = directions[0]
    spec = _keras_recurrent_spec(keras, first)
    options = _direction_options(first, spec)
    for other in directions[1:]:
        same = (_keras_recurrent_spec(keras, other) == spec
                and _direction_options(other, spec) == options
                and (other.cell.units, other.cell.use_bias) == (first.cell.units,
                                                                 first.cell.use_bias))
        if not same:
            raise ValueError(f"Bidirectional {layer.name!r}: its backward layer "
                             f"{type(other).__name__}({other.cell.units}) differs from its "
                             f"forward layer {type(first).__name__}({first.cell.units}) in "
                             f"type, units, use_bias or an option; rnnkit's two directions "
                             f"share one configuration")
    dtypes = {_numpy_dtype(part) for part in [layer, *directions]}
    if len(dtypes) != 1:
        raise TypeError(f"Bidirectional {layer.name!r} and the layers it wraps have different "
                        f"dtypes ({', '.join(sorted(d.name for d in dtypes))}); rnnkit layers "
                        f"compute in one dtype")
    (dtype,) = dtypes
    params = [_direction_params(keras, d, spec, dtype) for d in directions]
    bidirectional = len(directions) == 2
    # Keras's Bidirectional without return_sequences merges the two final states (the backward
    # direction's ends at step 0); rnnkit's return_sequences=False would take the merged output
    # at the last step, so that layer returns its sequence and its final states instead
    merged_last = bidirectional and not layer.return_sequences
    converted = recurrent_layer(spec.cell)(
        params[0]["Wx"].shape[0], first.cell.units, bidirectional=bidirectional,
        merge=layer.merge_mode if bidirectional else "concat",
        return_sequences=layer.return_sequences or merged_last,
        return_state=layer.return_state or merged_last, dtype=dtype, **options)
    converted.load_state_dict({f"l0.{name}.{key}": value.astype(dtype, copy=False)
                               for name, direction in zip(("fwd", "bwd"), params)
                               for key, value in direction.items()})
    converted.keras_use_bias = bool(first.cell.use_bias)
    return converted


def _keras_class_of(keras, layer) -> str:
    return _supported_class_name(layer, keras.layers, "keras.layers", keras.layers.Layer,
                                SUPPORTED_KERAS_LAYERS, "from_keras")


def from_keras(layer):
    """The rnnkit.nn layer equivalent to the built Keras 3 ``layer``, with a copy of its weights.

    - ``SimpleRNN`` (activation tanh or relu: ``nonlinearity``), ``LSTM``, ``GRU``
      (``reset_after`` True/False: ``linear_before_reset``) and ``Bidirectional`` wrapping one
      of them (merge_mode concat, sum, mul, ave: ``merge``) become ``rnnkit.nn.RNN``, ``LSTM``
      or ``GRU`` (batch-first, as Keras is) with Keras's ``return_sequences`` and
      ``return_state``; states come back as rnnkit's list (``[h]`` or ``[(h, c)]``, fwd then
      bwd) where Keras returns them flat. A ``Bidirectional`` with ``return_sequences=False``
      becomes a layer with ``return_sequences=True, return_state=True``: Keras's output is the
      merge of the two final ``h`` states it returns (docs/persistence.md).
      ``use_bias=False`` gives zero biases and ``keras_use_bias = False``. Dropout rates are
      training-time options and are not carried; ``unroll`` only changes how Keras runs the loop.
    - ``Embedding`` becomes ``rnnkit.nn.Embedding`` with the same rows; ``mask_zero=True`` is
      recorded as ``keras_mask_zero = True`` (rnnkit has no masks: pass ``lengths=`` to the
      layers after it). ``Dense`` with activation linear becomes ``rnnkit.nn.Linear``.

    NotImplementedError naming the option for what rnnkit does not compute (other activations,
    ``stateful``, ``go_backwards`` outside Bidirectional, merge_mode None, quantization);
    TypeError for other layer types and dtypes other than float32/float64; ValueError for an
    unbuilt layer. Imports Keras (see this module's docstring for the backend)."""
    keras = _import_keras()
    kind = _keras_class_of(keras, layer)
    _check_built(layer)
    if kind == "Dense":
        _check_not_quantized(layer)
        activation = layer.get_config()["activation"]
        if activation != "linear":
            raise _unsupported(layer, "activation", activation, "rnnkit.nn.Linear is affine "
                               "(use activation=None or 'linear' and apply it after)")
        dtype = _numpy_dtype(layer)
        W = _numpy(keras, layer.kernel)
        converted = Linear(*W.shape, bias=layer.use_bias, dtype=dtype)
        converted.load_state_dict({"W": W, **({"b": _numpy(keras, layer.bias)}
                                              if layer.use_bias else {})})
        return converted
    if kind == "Embedding":
        _check_not_quantized(layer)
        W = _numpy(keras, layer.embeddings)
        converted = Embedding(*W.shape, dtype=_numpy_dtype(layer))
        converted.load_state_dict({"W": W})
        converted.keras_mask_zero = bool(layer.mask_zero)
        return converted
    return _recurrent_from_keras(keras, layer)


# ---------------------------------------------------------------------------- to Keras
def _keras_incompatibilities(layer) -> list:
    """What makes the recurrent ``layer`` compute something one Keras layer cannot."""
    problems = []
    if layer.num_layers != 1:
        problems.append(f"num_layers={layer.num_layers} (a Keras layer is one layer: convert "
                        f"a stack as separate rnnkit layers)")
    if layer.norm is not None:
        problems.append(f"norm={layer.norm!r}")
    if layer.skip is not None:
        problems.append(f"skip={layer.skip!r}")
    for option in layer.cell_type.parameter_options:  # LSTM proj_size, peepholes
        if layer.cell_options[option]:
            problems.append(f"{option}={layer.cell_options[option]!r} (Keras's LSTM has "
                            f"neither a projection nor peepholes)")
    if layer.bidirectional and not layer.return_sequences:
        problems.append("bidirectional with return_sequences=False (rnnkit takes the merged "
                        "output at the last step, Keras merges the final states)")
    return problems


def _recurrent_use_bias(layer) -> bool:
    if getattr(layer, "keras_use_bias", True):
        return True
    if any(np.any(array != 0) for name, array in layer.parameters().items()
           if name.rsplit(".", 1)[-1] in ("b", "bh")):
        _warnings.warn(f"{type(layer).__name__} came from a Keras layer with use_bias=False but "
                       f"its biases are no longer zero (trained in rnnkit?); the Keras layer "
                       f"gets use_bias=True to compute the same function", UserWarning,
                       stacklevel=3)
        return True
    return False


def _recurrent_to_keras(keras, layer):
    problems = _keras_incompatibilities(layer)
    if problems:
        raise ValueError(f"{type(layer).__name__} with {', '.join(problems)} has no Keras "
                         f"equivalent")
    spec = _BY_CELL[layer.cell_type.name]
    options = {spec.option[0]: layer.cell_options[spec.option[1]]} if spec.option else {}
    use_bias = _recurrent_use_bias(layer)
    dtype = layer.dtype.name
    converted = getattr(keras.layers, spec.layer)(
        layer.hidden_size, return_sequences=layer.return_sequences,
        return_state=layer.return_state, use_bias=use_bias, dtype=dtype, **options)
    directions = [converted]
    if layer.bidirectional:
        converted = keras.layers.Bidirectional(converted, merge_mode=layer.merge, dtype=dtype)
        directions = [converted.forward_layer, converted.backward_layer]
    converted.build((None, None, layer.input_size))
    H, order = layer.hidden_size, layer.cell_type.gate_names
    for keras_direction, ours in zip(directions, layer.levels[0].directions):
        cell = keras_direction.cell
        cell.kernel.assign(_reorder(ours.Wx, order, spec.gate_order, H))
        cell.recurrent_kernel.assign(_reorder(ours.Wh, order, spec.gate_order, H))
        if use_bias:
            # (2, 3H) for the reset_after GRU, where bh sits inside the reset; otherwise only
            # the sum of the two biases matters
            bias = np.stack([ours.b, ours.bh]) if len(cell.bias.shape) == 2 else ours.b + ours.bh
            cell.bias.assign(_reorder(bias, order, spec.gate_order, H))
    return converted


def to_keras(layer):
    """The built Keras 3 layer equivalent to the rnnkit.nn ``layer``, with a copy of its weights;
    ``to_keras(from_keras(k))`` holds exactly ``k``'s weights.

    ``RNN`` -> ``keras.layers.SimpleRNN`` (activation = ``nonlinearity``), ``LSTM`` -> ``LSTM``,
    ``GRU`` -> ``GRU`` (``reset_after`` = ``linear_before_reset``), each wrapped in
    ``Bidirectional`` (merge_mode = ``merge``) when bidirectional, with the layer's
    ``return_sequences``, ``return_state`` and dtype; ``Linear`` -> ``Dense``; ``Embedding`` ->
    ``Embedding`` (``mask_zero`` from ``keras_mask_zero``; the ``padding_idx`` row is written as
    zeros, which is what rnnkit outputs for it). Keras layers are batch-first whatever
    ``batch_first`` says; dropout rates are not carried. ValueError for a recurrent layer one
    Keras layer cannot express (num_layers > 1, norm, skip, bidirectional with
    return_sequences=False); TypeError for other layers. Imports Keras (see this module's
    docstring for the backend)."""
    if not isinstance(layer, (_Recurrent, Linear, Embedding)):
        raise TypeError(f"no Keras equivalent for rnnkit layer {type(layer).__name__}; "
                        f"supported: rnnkit.nn.RNN, LSTM, GRU, Embedding and Linear")
    keras = _import_keras()
    if isinstance(layer, _Recurrent):
        return _recurrent_to_keras(keras, layer)
    if isinstance(layer, Linear):
        use_bias = "b" in layer.parameters()
        converted = keras.layers.Dense(layer.out_features, use_bias=use_bias,
                                       dtype=layer.dtype.name)
        converted.build((None, layer.in_features))
        converted.kernel.assign(layer.W)
        if use_bias:
            converted.bias.assign(layer.b)
        return converted
    converted = keras.layers.Embedding(layer.num_embeddings, layer.dim,
                                       mask_zero=getattr(layer, "keras_mask_zero", False),
                                       dtype=layer.dtype.name)
    converted.build((None,))
    W = layer.W.copy()
    if layer.padding_idx is not None:
        W[layer.padding_idx] = 0
    converted.embeddings.assign(W)
    return converted
