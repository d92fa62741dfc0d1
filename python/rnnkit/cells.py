"""The recurrent cells rnnkit knows, each described once.

Layers, models, benchmarks and tests look a cell up here (``get_cell("gru")``) and ask it what
they need (gate count, state structure, options, initialisation, entry points) instead of
branching on its name; a new cell is one more entry in ``CELLS``. The C++ core keeps its own
table (``rnnkit._core.cells()``, cpp/src/cells.cpp) keyed by *core names*, one per variant the
kernels compile separately (``rnn_tanh``, ``rnn_relu``, ``lstm``, ``gru``); ``Cell.core_name``
maps a cell and its options onto that table, and the tests check that both tables agree.

Shapes follow docs/design.md: Wx (I, G*H), Wh (S, G*H), b and bh (G*H,), G = ``num_gates``
H-wide column blocks in the canonical order ``gate_names``; S, the width of h, is H or an LSTM's
``proj_size``. Options that add parameters (``parameter_options``: an LSTM's ``proj_size`` adds
``Wr`` (H, P), ``peepholes`` adds ``peepholes`` (3, H)) reach the kernels as those arrays.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

__all__ = ["Cell", "CELLS", "get_cell", "cell_for_core_name", "cell_names"]


@dataclass(frozen=True)
class Cell:
    """One recurrent cell.

    ``options`` maps each option name to its allowed values, the default first
    (``nonlinearity=("tanh", "relu")``), or to a ``range`` of allowed ints (``proj_size``).
    ``core_variant`` names the option, if any, whose value selects a separately compiled kernel
    (the core name is then ``f"{name}_{value}"``). ``parameter_options`` maps the options that
    add a parameter to its name: a layer owns that parameter while the option is truthy and
    passes it to the kernel by that name. Other options are keyword arguments of the kernel.
    ``initial_bias`` gives the initial value of ``b``'s block of the named gates (everything
    else starts at 0)."""

    name: str
    num_gates: int
    gate_names: str  # canonical block order, one letter per gate; "" when gates are unnamed
    has_cell_state: bool  # carries c besides h: states are (h, c) pairs
    options: Mapping[str, tuple | range] = field(default_factory=dict)
    core_variant: str | None = None
    parameter_options: Mapping[str, str] = field(default_factory=dict)
    initial_bias: Mapping[str, float] = field(default_factory=dict)
    torch_module: str = ""  # the same cell's torch.nn class name (parity checks, conversions)

    def __post_init__(self):
        # frozen, and shared by every caller: keep the mappings read-only too
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "parameter_options",
                           MappingProxyType(dict(self.parameter_options)))
        object.__setattr__(self, "initial_bias", MappingProxyType(dict(self.initial_bias)))

    def __reduce__(self):
        # pickles and copies as its name, so a layer restored anywhere shares the registry's
        # entry (and the read-only mappings, which cannot be pickled, never travel)
        return get_cell, (self.name,)

    # ------------------------------------------------------------------ structure
    @property
    def state_names(self) -> tuple:
        """The states a layer carries, in the order the entry points take them."""
        return ("h", "c") if self.has_cell_state else ("h",)

    # ------------------------------------------------------------------ options
    def defaults(self) -> dict:
        return {option: allowed[0] for option, allowed in self.options.items()}

    def resolve_options(self, **given) -> dict:
        """Every option of this cell, ``given`` ones checked, the others at their defaults.
        ValueError naming the option for a value it does not allow or an unknown option."""
        for option, value in given.items():
            if option not in self.options:
                known = ", ".join(self.options) or "none"
                raise ValueError(f"{self.name} has no option {option!r} (its options: {known})")
            allowed = self.options[option]
            if isinstance(allowed, range):
                if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
                        or value not in allowed):
                    raise ValueError(f"{option} must be an int >= {allowed.start}, got {value!r}")
                given[option] = int(value)
            elif value not in allowed:
                raise ValueError(f"{option} must be {' or '.join(map(repr, allowed))}, "
                                 f"got {value!r}")
        return dict(self.defaults(), **given)

    def kernel_options(self, options: Mapping) -> dict:
        """The options among ``options`` that the entry points take as keyword arguments
        (those that add parameters reach them as the parameters instead)."""
        return {k: v for k, v in options.items() if k not in self.parameter_options}

    def parameter_names(self, **options) -> tuple:
        """The parameters of one layer direction with ``options``, in state-dict order."""
        resolved = self.resolve_options(**options)
        extra = tuple(name for option, name in self.parameter_options.items() if resolved[option])
        return ("Wx", "Wh", "b", "bh") + extra

    def state_size(self, hidden_size: int, **options) -> int:
        """S, the width of h and of the outputs: the projection's width when there is one."""
        return self.resolve_options(**options).get("proj_size") or hidden_size

    def core_name(self, **options) -> str:
        """The core's name of this cell with ``options`` (e.g. nonlinearity="relu": rnn_relu)."""
        resolved = self.resolve_options(**options)
        if self.core_variant is None:
            return self.name
        return f"{self.name}_{resolved[self.core_variant]}"

    @property
    def core_names(self) -> tuple:
        """Every core name this cell runs as."""
        if self.core_variant is None:
            return (self.name,)
        return tuple(f"{self.name}_{value}" for value in self.options[self.core_variant])

    def options_for_core_name(self, core_name: str) -> dict:
        """The options that ``core_name`` fixes (nonlinearity="relu" for rnn_relu)."""
        if core_name not in self.core_names:
            raise ValueError(f"{core_name!r} is not a core name of {self.name}")
        if self.core_variant is None:
            return {}
        return {self.core_variant: core_name[len(self.name) + 1:]}

    # ------------------------------------------------------------------ entry points
    # Resolved on use: rnnkit.functional and rnnkit.reference may import this module.
    def _entry(self, module: str, direction: str) -> Callable:
        return getattr(importlib.import_module(f"rnnkit.{module}"), f"{self.name}_{direction}")

    @property
    def forward(self) -> Callable:
        """rnnkit.functional.<name>_forward, the fused kernel."""
        return self._entry("functional", "forward")

    @property
    def backward(self) -> Callable:
        return self._entry("functional", "backward")

    @property
    def reference_forward(self) -> Callable:
        """rnnkit.reference.<name>_forward, the plain NumPy oracle."""
        return self._entry("reference", "forward")

    @property
    def reference_backward(self) -> Callable:
        return self._entry("reference", "backward")

    # The entry points differ in their state arguments (an LSTM's come in (h, c) pairs); these
    # two give every cell one calling convention, with c None where there is none.
    def run_forward(self, x, h0, c0, Wx, Wh, b, bh=None, *, reference=False, checked=False,
                    **kwargs):
        """This cell's functional forward (reference=True: the reference one) on ``x``;
        ``kwargs`` as that function takes them. Returns (y, hT, cT or None, cache).
        checked=True is for callers that have checked every argument themselves (the
        rnnkit.nn layers): the kernels then run without rnnkit.functional's checks."""
        if checked and not reference:
            from .functional import layer_forward  # functional imports this module

            # kernel options; a parameter option's name may also be its parameter's (peepholes)
            options = {k: kwargs.pop(k) for k in list(kwargs)
                       if k in self.options and k not in self.parameter_options}
            kernel_options = {k: v for k, v in options.items() if k != self.core_variant}
            return layer_forward(self.core_name(**options), x, h0,
                                 c0 if self.has_cell_state else None, Wx, Wh, b, bh,
                                 **kernel_options, **kwargs)
        forward = self.reference_forward if reference else self.forward
        y, *final, cache = forward(x, *self._states(h0, c0), Wx, Wh, b, bh, **kwargs)
        hT, cT = final if self.has_cell_state else (final[0], None)
        return y, hT, cT, cache

    def run_backward(self, dy, dhT, dcT, cache, *, reference=False, checked=False):
        """The matching backward: (dx, dh0, dc0 or None, grads), grads a dict from parameter
        name (Wx, Wh, b, bh, and Wr, peepholes where the forward had them; with checked=True
        after a normalised forward also gamma_x, gamma_h, gamma_c, beta_c) to its gradient.
        checked=True: the gradients are checked and C-contiguous and ``cache`` came from a
        checked forward (no rnnkit.functional checks)."""
        if checked and not reference:
            from .functional import layer_backward

            dx, dh0, dc0, *rest, norm_grads = layer_backward(cache, dy, dhT, dcT)
            norm_grads = norm_grads or {}
        else:
            norm_grads = {}
            backward = self.reference_backward if reference else self.backward
            dx, dh0, *rest = backward(dy, *self._states(dhT, dcT), cache)
            dc0 = rest.pop(0) if self.has_cell_state else None
        names = ("Wx", "Wh", "b", "bh", *self.parameter_options.values())
        grads = {k: g for k, g in zip(names, rest) if g is not None}
        return dx, dh0, dc0, {**grads, **norm_grads}

    def _states(self, h, c) -> tuple:
        return (h, c) if self.has_cell_state else (h,)

    # ------------------------------------------------------------------ initialisation
    def init_params(self, rng: np.random.Generator, input_size: int, hidden_size: int,
                    dtype, **options) -> dict:
        """The nn layers' initial parameters (Keras-style): Wx Glorot uniform, every S x H gate
        block of Wh orthogonal (orthonormal columns or rows when S != H), b and bh zero except
        ``initial_bias`` (the LSTM forget gate starts at 1, so f starts near sigmoid(1) = 0.73
        and gradients flow through the cell early in training); a projection Wr Glorot
        uniform; peepholes zero (the cell starts as the plain LSTM). Draws Wx, then Wh, then
        Wr from ``rng``."""
        from .nn.layers import glorot_uniform  # nn imports this module

        resolved = self.resolve_options(**options)
        G, H = self.num_gates, hidden_size
        S = self.state_size(H, **resolved)
        Wx = glorot_uniform(rng, input_size, G * H, dtype)
        Wh = _orthogonal_blocks(rng, S, H, G, dtype)
        b = np.zeros(G * H, dtype)
        for gate, value in self.initial_bias.items():
            k = self.gate_names.index(gate)
            b[k * H:(k + 1) * H] = value
        params = {"Wx": Wx, "Wh": Wh, "b": b, "bh": np.zeros(G * H, dtype)}
        if resolved.get("proj_size"):
            params["Wr"] = glorot_uniform(rng, H, S, dtype)
        if resolved.get("peepholes"):
            params["peepholes"] = np.zeros((3, H), dtype)
        return params


def _orthogonal_blocks(rng, rows: int, H: int, G: int, dtype) -> np.ndarray:
    """G random (rows, H) blocks side by side, each with orthonormal columns (rows >= H) or
    rows (rows < H)."""
    blocks = []
    for _ in range(G):
        q, r = np.linalg.qr(rng.standard_normal((max(rows, H), min(rows, H))))
        q = q * np.sign(np.diag(r))  # sign fix: uniform over orthogonal matrices
        blocks.append(q if rows >= H else q.T)
    return np.concatenate(blocks, axis=1).astype(dtype)


CELLS = (
    Cell("rnn", num_gates=1, gate_names="", has_cell_state=False,
         options={"nonlinearity": ("tanh", "relu")}, core_variant="nonlinearity",
         torch_module="RNN"),
    # proj_size=P: h_t = (o * tanh(c_t)) @ Wr, Wr (H, P), as torch.nn.LSTM(proj_size=P);
    # peepholes=True: i and f read c_{t-1}, o reads c_t (Gers & Schmidhuber; ONNX's P input)
    Cell("lstm", num_gates=4, gate_names="ifgo", has_cell_state=True, initial_bias={"f": 1.0},
         options={"peepholes": (False, True), "proj_size": range(0, 2**31)},
         parameter_options={"proj_size": "Wr", "peepholes": "peepholes"}, torch_module="LSTM"),
    # linear_before_reset=True: reset gate after the recurrent product (PyTorch/cuDNN);
    # False: before it (Cho et al. 2014, ONNX default)
    Cell("gru", num_gates=3, gate_names="rzn", has_cell_state=False,
         options={"linear_before_reset": (True, False)}, torch_module="GRU"),
)
_BY_NAME = {cell.name: cell for cell in CELLS}
_BY_CORE_NAME = {core: cell for cell in CELLS for core in cell.core_names}


def cell_names() -> tuple:
    return tuple(_BY_NAME)


def get_cell(name) -> Cell:
    """The cell called ``name`` ("rnn", "lstm", "gru"); a Cell is returned as it is."""
    if isinstance(name, Cell):
        return name
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell must be one of {', '.join(map(repr, _BY_NAME))}, "
                         f"got {name!r}") from None


def cell_for_core_name(core_name: str) -> Cell:
    """The cell the core's ``core_name`` ("rnn_relu", "gru", ...) is a variant of."""
    try:
        return _BY_CORE_NAME[core_name]
    except (KeyError, TypeError):
        raise ValueError(f"core cell must be one of {', '.join(map(repr, _BY_CORE_NAME))}, "
                         f"got {core_name!r}") from None
