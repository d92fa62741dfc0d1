"""Recurrent layers RNN, LSTM and GRU: stacked, (bi)directional, with dropout between layers,
variational recurrent dropout, skip connections and normalisation inside the recurrence.

Shapes (docs/design.md): input batch-first (B, T, I), or time-major (T, B, I) with
``batch_first=False`` (what the models use inside, next to the time-major kernels).
Each layer l and direction d (``fwd``, ``bwd``) owns ``Wx`` (I_l, G*H), ``Wh`` (S, G*H), ``b``
and ``bh`` (G*H,) with gate blocks RNN 1, LSTM i, f, g, o, GRU r, z, n, named
``l{l}.{fwd|bwd}.{Wx|Wh|b|bh}``; S is H, or an LSTM's ``proj_size`` P, which adds ``Wr`` (H, P);
an LSTM with ``peepholes=True`` also owns ``peepholes`` (3, H) (with normalisation also ``norm_x.gamma``, ``norm_h.gamma``,
LSTM layer norm ``norm_c.gamma``/``norm_c.beta``; batch norm buffers ``running_mean_x``,
``running_var_x``, ``running_mean_h``, ``running_var_h``).

Initialisation: each cell's ``init_params`` (rnnkit.cells; Keras-style: Wx Glorot uniform,
Wh orthogonal blocks, biases zero but the LSTM forget gate's b at 1). Normalisation gains
start at 1 (layer norm) or 0.1 (batch norm, Cooijmans et al.), shifts at 0.

Every direction of every layer is one call of the fused C++ kernels of ``rnnkit.functional``
(forward and backward, recurrent dropout included: the mask is an argument of the kernel).
With ``norm="layer"``/``"batch"`` the kernels normalise inside the recurrence; an
inference-mode batch norm is folded into the weights (``rnnkit.nn.normalized``).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..cells import get_cell
from .._checks import layout_note, lengths_array, shape_str
from .heads import last_step, last_step_backward
from .layers import dropout_mask, valid_mask
from .module import Module, check_dtype, check_positive_int, check_probability, float_input
from .normalized import (core_norm, fold_batch_norm, unfold_batch_norm_gradients,
                         update_running_statistics)

__all__ = ["RNN", "LSTM", "GRU", "recurrent_layer"]

MERGES = ("concat", "sum", "mul", "ave")
SKIPS = (None, "residual", "dense")
NORMS = (None, "layer", "batch")


class _NormParams(Module):
    """Holds the gain ``gamma`` (and shift ``beta``) of one normalisation site."""

    def __init__(self, size, gamma, dtype, beta=False):
        super().__init__()
        self.add_parameter("gamma", np.full(size, gamma, dtype=dtype))
        if beta:
            self.add_parameter("beta", np.zeros(size, dtype=dtype))


class _Direction(Module):
    """One layer, one direction: the cell's parameters and one call of the kernel per forward."""

    def __init__(self, cell_type, cell_options, input_size, hidden_size, *, reverse, norm,
                 recurrent_dropout, dtype, seed):
        init_seed, rng_seed = seed.spawn(2)  # seed: a SeedSequence
        super().__init__(rng_seed)
        self.cell_type, self.cell_options = cell_type, cell_options
        self.cell = cell_type.core_name(**cell_options)
        self.reverse, self.norm = reverse, norm
        self.hidden_size, self.input_size = hidden_size, input_size
        self.recurrent_dropout = recurrent_dropout
        self.dtype = dtype
        G, H = cell_type.num_gates, hidden_size
        self.state_size = cell_type.state_size(H, **cell_options)
        # what every kernel call passes, derived once from the options
        self._kernel_names = cell_type.parameter_names(**cell_options)
        self._kernel_options = cell_type.kernel_options(cell_options)
        init = np.random.default_rng(init_seed)
        for name, value in cell_type.init_params(init, input_size, H, dtype,
                                                 **cell_options).items():
            self.add_parameter(name, value)
        if norm is not None:
            gain = 1.0 if norm == "layer" else 0.1
            self.norm_x = _NormParams(G * H, gain, dtype)
            self.norm_h = _NormParams(G * H, gain, dtype)
            if norm == "layer" and cell_type.has_cell_state:  # the cell state is normalised too
                self.norm_c = _NormParams(H, 1.0, dtype, beta=True)
            if norm == "batch":
                for site in ("x", "h"):
                    self.add_buffer(f"running_mean_{site}", np.zeros(G * H, dtype))
                    self.add_buffer(f"running_var_{site}", np.ones(G * H, dtype))
        self._cache = None
        self.last_recurrent_mask = None

    def kernel_params(self) -> dict:
        """This direction's parameters by the names the cell's entry points take them."""
        return {name: self._params[name] for name in self._kernel_names}

    def _norm_gains(self) -> dict:
        gains = {"gamma_x": self.norm_x.gamma, "gamma_h": self.norm_h.gamma}
        if "norm_c" in self._children:
            gains.update(gamma_c=self.norm_c.gamma, beta_c=self.norm_c.beta)
        return gains

    def forward(self, x, lengths, training, h0, c0):
        B, S = x.shape[1], self.state_size
        mask = None
        if training and self.recurrent_dropout > 0:
            mask = dropout_mask(self._rng, (B, S), self.recurrent_dropout, self.dtype, like=x)
        self.last_recurrent_mask = mask
        params, norm, self._fold = self.kernel_params(), None, None
        if self.norm == "batch" and not training:  # running statistics: an affine map
            params, self._fold = fold_batch_norm(params, self.norm_x.gamma, self.norm_h.gamma,
                                                 self._buffers)
        elif self.norm is not None:
            norm = core_norm(self.norm, **self._norm_gains())
        call = dict(x=self._xp().ascontiguousarray(x), h0=h0, c0=c0, params=params, norm=norm,
                    lengths=lengths, mask=mask)
        y, hT, cT, cache = self._run(call, inference=not training)
        if self.norm == "batch" and training and B and (lengths is None or lengths.max() > 0):
            update_running_statistics(self._buffers, cache.handles[0].batch_statistics)
        # An inference forward keeps no reserve (no memory, no time storing it); a backward
        # after it (gradients of an evaluated model: rnnkit.diagnostics) reruns the call as a
        # training forward first.
        self._cache = cache if training else call
        return y, hT, cT

    def _run(self, call, inference):
        # the stack checked x, lengths and the states at its boundary: no second check
        return self.cell_type.run_forward(
            call["x"], call["h0"], call["c0"], **call["params"], lengths=call["lengths"],
            reverse=self.reverse, recurrent_mask=call["mask"], checked=True, norm=call["norm"],
            inference=inference, **self._kernel_options)

    def backward(self, dy, dhT, dcT):
        """Returns (dx, dh0, dc0); accumulates the parameter gradients."""
        cache = self._cache
        if isinstance(cache, dict):  # the inputs of an inference forward
            cache = self._run(cache, inference=False)[3]
        dx, dh0, dc0, grads = self.cell_type.run_backward(self._xp().ascontiguousarray(dy), dhT,
                                                          dcT, cache, checked=True)
        if self._fold is not None:
            grads = unfold_batch_norm_gradients(grads, self._fold, self.norm_x.gamma,
                                                self.norm_h.gamma)
        # the gains' gradients belong to the normalisation submodules
        sites = {}
        if self.norm is not None:
            sites = {"gamma_x": (self.norm_x, "gamma"), "gamma_h": (self.norm_h, "gamma")}
        if "norm_c" in self._children:
            sites.update(gamma_c=(self.norm_c, "gamma"), beta_c=(self.norm_c, "beta"))
        for name, grad in grads.items():
            owner, key = sites.get(name, (self, name))
            owner._grads[key] += grad
        return dx, dh0, dc0


class _Level(Module):
    """One layer of a stack: the forward direction and, if bidirectional, the backward one,
    run on the same input with the same lengths, merged."""

    def __init__(self, cell_type, cell_options, input_size, hidden_size, *, bidirectional, merge,
                 **kw):
        seeds = kw.pop("seed").spawn(3)  # a SeedSequence
        super().__init__(seeds[2])
        self.fwd = _Direction(cell_type, cell_options, input_size, hidden_size, reverse=False,
                              seed=seeds[0], **kw)
        self.directions = [self.fwd]
        if bidirectional:
            self.bwd = _Direction(cell_type, cell_options, input_size, hidden_size, reverse=True,
                                  seed=seeds[1], **kw)
            self.directions.append(self.bwd)
        self.merge = merge
        self._outs = None

    def forward(self, x, lengths, training, init):
        outs, states = [], []
        for d, s in zip(self.directions, init):
            h0, c0 = (s if isinstance(s, tuple) else (s, None))
            y, hT, cT = d.forward(x, lengths, training, h0, c0)
            outs.append(y)
            states.append((hT, cT) if d.cell_type.has_cell_state else hT)
        self._outs = outs
        if len(outs) == 1:
            return outs[0], states
        yf, yb = outs
        if self.merge == "concat":
            y = self._xp().concatenate([yf, yb], axis=-1)
        elif self.merge == "sum":
            y = yf + yb
        elif self.merge == "mul":
            y = yf * yb
        else:
            y = 0.5 * (yf + yb)
        return y, states

    def backward(self, dy, dstates):
        """dy: gradient of the merged output; dstates: per direction h or (h, c) or None.
        Returns (dx, list of dh0 or (dh0, dc0) per direction)."""
        outs = self._outs
        if len(outs) == 1:
            parts = [dy]
        elif self.merge == "concat":
            H = outs[0].shape[-1]
            parts = [dy[..., :H], dy[..., H:]]
        elif self.merge == "sum":
            parts = [dy, dy]
        elif self.merge == "mul":
            parts = [dy * outs[1], dy * outs[0]]
        else:
            parts = [0.5 * dy, 0.5 * dy]
        dx, dinit = None, []
        for d, part, ds in zip(self.directions, parts, dstates):
            dhT, dcT = (ds if isinstance(ds, tuple) else (ds, None))
            ddx, dh0, dc0 = d.backward(part, dhT, dcT)
            dx = ddx if dx is None else dx + ddx
            dinit.append((dh0, dc0) if d.cell_type.has_cell_state else dh0)
        return dx, dinit


class _Recurrent(Module):
    _cell = None  # the cell's name in rnnkit.cells

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False,
                 merge="concat", dropout=0.0, recurrent_dropout=0.0, skip=None, norm=None,
                 return_sequences=True, return_state=False, batch_first=True,
                 dtype=np.float32, seed=None, linear_before_reset=True, cell_options=None):
        super().__init__(seed)
        self.cell_type = get_cell(self._cell)
        # cell_options: what the subclass takes for its cell (RNN nonlinearity, GRU
        # linear_before_reset); they reach every kernel call
        self.cell_options = self.cell_type.resolve_options(**(cell_options or {}))
        self.cell = self.cell_type.core_name(**self.cell_options)  # "rnn_relu", "lstm", ...
        self.input_size = check_positive_int(input_size, "input_size")
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.bidirectional = bool(bidirectional)
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
        if skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if norm is not None and not self.cell_options.get("linear_before_reset", True):
            raise ValueError("norm requires linear_before_reset=True for GRU (the reset-before "
                             "variant puts r inside the normalised product)")
        for option in self.cell_type.parameter_options:
            if norm is not None and self.cell_options[option]:
                raise ValueError(f"norm={norm!r} cannot be combined with {option}="
                                 f"{self.cell_options[option]!r}: the normalised recurrence "
                                 f"(rnnkit.nn.normalized) has neither projection nor peepholes")
        self.merge, self.skip, self.norm = merge, skip, norm
        self.dropout = check_probability(dropout, "dropout")
        self.recurrent_dropout = check_probability(recurrent_dropout, "recurrent_dropout")
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.batch_first = bool(batch_first)
        self.linear_before_reset = bool(linear_before_reset)
        self.dtype = check_dtype(dtype)
        self.num_directions = 2 if self.bidirectional else 1
        H = self.hidden_size
        # S: the width of h and of each direction's output (an LSTM's proj_size, or H)
        self.state_size = S = self.cell_type.state_size(H, **self.cell_options)
        self.layer_output_size = 2 * S if self.bidirectional and merge == "concat" else S
        L = self.num_layers
        self.output_size = L * self.layer_output_size if skip == "dense" else self.layer_output_size
        seeds = np.random.SeedSequence(seed).spawn(L + 1)
        object.__setattr__(self, "_rng", np.random.default_rng(seeds[L]))
        self._residual = []
        for k in range(L):
            if k == 0:
                in_k = self.input_size
            elif skip == "dense":
                in_k = self.input_size + self.layer_output_size
            else:
                in_k = self.layer_output_size
            self._residual.append(skip == "residual" and in_k == self.layer_output_size)
            self.add_module(f"l{k}", _Level(
                self.cell_type, self.cell_options, in_k, H, bidirectional=self.bidirectional,
                merge=merge, norm=norm, recurrent_dropout=self.recurrent_dropout,
                dtype=self.dtype, seed=seeds[k]))
        self._cache = None
        self.dinitial_state = None

    def extra_repr(self):
        parts = [f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"]
        for name, default in (("bidirectional", False), ("merge", "concat"), ("dropout", 0.0),
                              ("recurrent_dropout", 0.0), ("skip", None), ("norm", None),
                              ("return_sequences", True), ("return_state", False),
                              ("batch_first", True)):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)!r}")
        defaults = self.cell_type.defaults()
        parts += [f"{k}={v!r}" for k, v in self.cell_options.items() if v != defaults[k]]
        return ", ".join(parts) + f", dtype={self.dtype}"

    def host_only_reason(self):
        if self.norm is not None:
            return (f"norm={self.norm!r} (the normalised recurrences run in the CPU core "
                    f"only)")
        return None

    @property
    def levels(self):
        return [self._children[f"l{k}"] for k in range(self.num_layers)]

    # ------------------------------------------------------------------ checks
    def _check_states(self, initial_state, B, what="initial_state"):
        """Checked, C-contiguous copies of a list of states (initial states, or the gradients of
        the final states when ``what`` says so)."""
        n = self.num_layers * self.num_directions
        if initial_state is None:
            return [None] * n
        if not isinstance(initial_state, (list, tuple)) or len(initial_state) != n:
            raise ValueError(f"{what} must be a list of num_layers * num_directions = {n} "
                             f"states (layer-major, fwd then bwd), got "
                             f"{type(initial_state).__name__} of length {len(initial_state) if hasattr(initial_state, '__len__') else '?'}")
        out = []
        for k, s in enumerate(initial_state):
            name = f"{what}[{k}]"
            if self.cell_type.has_cell_state:
                if s is None:
                    out.append(None)
                    continue
                if not isinstance(s, (tuple, list)) or len(s) != 2:
                    raise ValueError(f"{name} must be an (h, c) pair for LSTM")
                hc = tuple(None if a is None else self._check_state(a, f"{name}[{j}]", B, width)
                           for j, a in enumerate(s)
                           for width in [(self.state_size, self.hidden_size)[j]])
                out.append(hc)
            else:
                out.append(None if s is None else self._check_state(s, name, B, self.state_size))
        return out

    def _check_state(self, a, name, B, width):
        a = float_input(a, name, self.dtype, ndims=(2,), device=self._backend())
        if a.shape != (B, width):
            what = ("proj_size" if width == self.state_size and width != self.hidden_size
                    else "hidden_size")
            raise ValueError(f"{name} must have shape (B, {what}) = "
                             f"{shape_str((B, width))}, got {shape_str(a.shape)}")
        return self._xp().ascontiguousarray(a)

    # ------------------------------------------------------------------ forward
    def forward(self, x, *, lengths=None, training=False, initial_state=None):
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        xp = self._xp()
        x = float_input(x, "x", self.dtype, ndims=(3,), last=self.input_size, meaning=" " + layout,
                        device=self._backend())
        note = layout_note("x", x.shape, self.batch_first, "input_size")
        if self.batch_first:
            x = x.transpose(1, 0, 2)
        x = xp.ascontiguousarray(x)
        T, B, _ = x.shape
        lengths = lengths_array(lengths, B, T, layout=note)
        init = self._check_states(initial_state, B)
        V = None if lengths is None else valid_mask(lengths, T, B, self.dtype, like=x)
        D = self.num_directions
        inp, outs, drop_masks, states = x, [], [], []
        for k, level in enumerate(self.levels):
            if k > 0:
                prev = outs[-1]
                mask = None
                if training and self.dropout > 0:
                    mask = dropout_mask(self._rng, prev.shape, self.dropout, self.dtype, like=prev)
                    prev = prev * mask
                drop_masks.append(mask)
                inp = xp.concatenate([x, prev], axis=-1) if self.skip == "dense" else prev
            y, st = level.forward(inp, lengths, training, init[k * D:(k + 1) * D])
            if self._residual[k]:
                y = y + (inp if V is None else inp * V)
            outs.append(y)
            states.extend(st)
        out = xp.concatenate(outs, axis=-1) if self.skip == "dense" else outs[-1]
        self._cache = dict(shape=out.shape, lengths=lengths, V=V, drop_masks=drop_masks,
                           x_shape=x.shape, has_init=initial_state is not None)
        if not self.return_sequences:
            out = last_step(out, lengths)
        elif self.batch_first:
            out = out.transpose(1, 0, 2)
        if self.return_state:
            return out, states
        return out

    # ------------------------------------------------------------------ backward
    def backward(self, grad):
        """grad: the gradient of what forward returned (dy, or (dy, dstates) with
        return_state; None is allowed for parts without gradient). Returns dx; the gradient
        of initial_state (same structure, when one was given) is left in ``dinitial_state``."""
        c = self._cache
        if c is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        D, L = self.num_directions, self.num_layers
        dstates = [None] * (D * L)
        if self.return_state:
            if not isinstance(grad, (tuple, list)) or len(grad) != 2:
                raise ValueError("with return_state=True, grad must be a pair (dy, dstates)")
            dy, ds = grad
            if ds is not None:
                if len(ds) != D * L:
                    raise ValueError(f"dstates must be a list of {D * L} state gradients")
                dstates = self._check_states(ds, c["shape"][1], "dstates")
        else:
            dy = grad
        T, B, Hout = c["shape"]
        xp, device = self._xp(), self._backend()
        if dy is None:
            dy = xp.zeros(c["shape"], self.dtype)
        elif not self.return_sequences:
            dy = float_input(dy, "dy", self.dtype, ndims=(2,), device=device)
            if dy.shape != (B, Hout):
                raise ValueError(f"dy must have shape (B, output_size) = {shape_str((B, Hout))}, "
                                 f"got {shape_str(dy.shape)}")
            dy = last_step_backward(dy, c["lengths"], c["shape"], self.dtype)
        else:
            dy = float_input(dy, "dy", self.dtype, ndims=(3,), device=device)
            if self.batch_first:
                dy = dy.transpose(1, 0, 2)
            if dy.shape != c["shape"]:
                want = (B, T, Hout) if self.batch_first else (T, B, Hout)
                raise ValueError(f"dy must have the output's shape {shape_str(want)}, got "
                                 f"{shape_str(dy.transpose(1, 0, 2).shape if self.batch_first else dy.shape)}")
        V = c["V"]
        H = self.layer_output_size
        I = self.input_size
        if self.skip == "dense":
            douts = [xp.ascontiguousarray(dy[..., k * H:(k + 1) * H]) for k in range(L)]
        else:
            douts = [None] * (L - 1) + [dy]
        dx = xp.zeros(c["x_shape"], self.dtype)
        dinit = [None] * (D * L)
        for k in range(L - 1, -1, -1):
            dout = douts[k]
            din, di = self.levels[k].backward(xp.ascontiguousarray(dout),
                                              dstates[k * D:(k + 1) * D])
            dinit[k * D:(k + 1) * D] = di
            if self._residual[k]:
                din = din + (dout if V is None else dout * V)
            if k == 0:
                dx += din
                continue
            if self.skip == "dense":
                dx += din[..., :I]
                dprev = din[..., I:]
            else:
                dprev = din
            mask = c["drop_masks"][k - 1]
            if mask is not None:
                dprev = dprev * mask
            douts[k - 1] = dprev if douts[k - 1] is None else douts[k - 1] + dprev
        self.dinitial_state = dinit if c["has_init"] else None
        return dx.transpose(1, 0, 2) if self.batch_first else dx


_DOC_COMMON = """
    Arguments: input_size, hidden_size, num_layers=1, and keyword-only
    bidirectional (a second direction over each sequence reversed within its own length),
    merge "concat" | "sum" | "mul" | "ave" (how the two directions' outputs combine),
    dropout (inverted dropout on each layer's output before the next layer, training only),
    recurrent_dropout (variational: one Bernoulli mask (B, H) per sequence and direction,
    drawn from the layer's generator at each training forward, multiplies h_{{t-1}} in
    h_{{t-1}} @ Wh at every step; runs inside the fused kernel),
    skip None | "residual" (a layer's output adds its input wherever the widths are equal,
    the first layer included; padded steps stay zero) | "dense" (Graves 2013: layer k > 0 sees
    concat(x, output of layer k-1), the stack outputs concat of all layers' outputs),
    norm None | "layer" | "batch" (normalisation inside the recurrence, see
    rnnkit.nn.normalized), return_sequences (False: the output at each sequence's last valid
    step, (B, output_size)), return_state (forward returns (y, states), states a list of
    num_layers * num_directions final states, layer-major, fwd then bwd, each h (B, H)
    {state}), batch_first, dtype, seed (initialisation and the module's generator).

    forward(x, *, lengths=None, training=False, initial_state=None): x (T, B, input_size);
    lengths (B,) ints in [0, T]; initial_state in the format of the returned states (entries
    may be None). backward(grad) takes the gradient of what forward returned and returns dx;
    the gradient of a given initial_state is left in ``dinitial_state``.
"""


class RNN(_Recurrent):
    _cell = "rnn"
    __doc__ = ("Elman RNN layer stack: h_t = phi(x_t Wx + b + h_{t-1} Wh + bh), phi = tanh or relu "
               "(nonlinearity=; mode= is its deprecated alias).\n" + _DOC_COMMON.format(state=""))

    def __init__(self, input_size, hidden_size, num_layers=1, *, nonlinearity="tanh", mode=None,
                 **kw):
        if mode is not None:
            nonlinearity = _deprecated_mode(mode, nonlinearity)
        super().__init__(input_size, hidden_size, num_layers,
                         cell_options={"nonlinearity": nonlinearity}, **kw)
        self.nonlinearity = self.cell_options["nonlinearity"]

    @property
    def mode(self):
        """Deprecated alias of ``nonlinearity``."""
        warnings.warn(_MODE_DEPRECATION, FutureWarning, stacklevel=2)
        return self.nonlinearity


# one spelling everywhere, PyTorch's: nonlinearity=; mode= stays for one release
_MODE_DEPRECATION = ("RNN's mode= is deprecated and will be removed in the next release; "
                     "use nonlinearity= (the same values, 'tanh' or 'relu')")


def _deprecated_mode(mode, nonlinearity):
    """The nonlinearity that ``mode=`` asks for, with a FutureWarning; ValueError naming mode for
    a value it does not allow or for a conflicting nonlinearity."""
    warnings.warn(_MODE_DEPRECATION, FutureWarning, stacklevel=3)
    if nonlinearity != "tanh" and nonlinearity != mode:
        raise ValueError(f"mode={mode!r} and nonlinearity={nonlinearity!r} disagree; "
                         "pass nonlinearity= only")
    try:
        get_cell("rnn").resolve_options(nonlinearity=mode)
    except ValueError:
        raise ValueError(f"mode (deprecated alias of nonlinearity) must be 'tanh' or 'relu', "
                         f"got {mode!r}") from None
    return mode


class LSTM(_Recurrent):
    __doc__ = ("LSTM layer stack, gates i, f, g, o; forget-gate bias initialised to 1.\n"
               "proj_size=P > 0 (as torch.nn.LSTM): h_t = (o * tanh(c_t)) @ Wr, Wr (H, P), so the "
               "outputs, h and Wh's rows are P wide and c stays H wide; peepholes=True: i and f "
               "also read c_{t-1}, o reads c_t, through the (3, H) parameter ``peepholes`` "
               "(rows p_i, p_f, p_o; starts at 0).\n"
               + _DOC_COMMON.format(state="(LSTM: a pair (h, c); h is P wide with proj_size)"))
    _cell = "lstm"

    def __init__(self, input_size, hidden_size, num_layers=1, *, proj_size=0, peepholes=False,
                 **kw):
        super().__init__(input_size, hidden_size, num_layers,
                         cell_options={"proj_size": proj_size, "peepholes": peepholes}, **kw)
        self.proj_size = self.cell_options["proj_size"]
        self.peepholes = self.cell_options["peepholes"]


class GRU(_Recurrent):
    __doc__ = ("GRU layer stack, gates r, z, n; linear_before_reset=True (PyTorch/cuDNN) or False "
               "(Cho et al.; not with norm).\n" + _DOC_COMMON.format(state=""))
    _cell = "gru"

    def __init__(self, input_size, hidden_size, num_layers=1, *, linear_before_reset=True, **kw):
        super().__init__(input_size, hidden_size, num_layers,
                         linear_before_reset=linear_before_reset,
                         cell_options={"linear_before_reset": bool(linear_before_reset)}, **kw)


def recurrent_layer(cell) -> type:
    """The layer class (RNN, LSTM or GRU) of the rnnkit.cells cell named ``cell``; ValueError
    listing the valid names for any other."""
    name = get_cell(cell).name
    return next(layer for layer in (RNN, LSTM, GRU) if layer._cell == name)
