"""The ``Module`` base class of ``rnnkit.nn`` and ``Sequential``.

There is no autograd. Every module has an explicit ``forward`` that keeps on the instance what
its ``backward`` needs, and a ``backward(grad)`` that returns the gradient with respect to the
forward's input and *accumulates* (``+=``) the parameter gradients into the arrays that
``grads()`` returns (PyTorch semantics: call ``zero_grad()`` between steps).

Parameters, gradients and buffers are named by the module tree with dots, e.g.
``"rnn.l0.fwd.Wx"``; the last component says the kind of a parameter (``Wx``/``W`` input
weights, ``Wh`` recurrent weights, ``b``/``bh`` biases, ``gamma``/``beta`` normalisation
gains/shifts), so regularisers can treat them separately. ``parameters()`` and ``grads()`` hand
out the live arrays (an optimiser updates them in place); ``state_dict()`` hands out copies of
parameters and buffers (e.g. batch-norm running statistics).

Randomness (dropout masks) comes from each module's own ``np.random.Generator``;
``seed(seed)`` reseeds every generator of the tree deterministically, ``rng_state()`` /
``set_rng_state()`` snapshot and restore them (picklable), for exact resume.

Devices: ``model.to("cuda")`` moves every parameter, gradient and buffer of the tree to CuPy
arrays, ``model.to("cpu")`` back to NumPy. A module computes with the array module of its
arrays (``rnnkit._device.array_module``: numpy or cupy), so the same code runs on either;
inputs must live where the parameters do (TypeError naming the argument otherwise). Dropout
masks are drawn on the host by the module's generator and then moved, so a model draws the
same masks on either device.
"""
from __future__ import annotations

import functools
import inspect
from collections import OrderedDict

import numpy as np

from .. import _device
from .._checks import FLOAT_DTYPES, check_positive_int, shape_str  # noqa: F401 (re-exported)

__all__ = ["Module", "Sequential"]


def check_dtype(dtype) -> np.dtype:
    """A layer's dtype argument: float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dt}")
    return dt


def check_probability(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return float(value)


def placed(x, name: str, device):
    """``x`` where a layer on ``device`` (a _device backend, None for the host) computes (see
    ``_device.placed``)."""
    return _device.placed(x, name, device, "this layer's parameters",
                          " or the model with model.to(...)")


def float_input(x, name: str, dtype: np.dtype, ndims=(3,), last: int | None = None,
                meaning: str = "", device=None) -> np.ndarray:
    """Checks a floating input of a layer: an array of the layer's dtype (no silent casts: the
    message says how to cast) on the layer's ``device`` (see ``placed``), one of ``ndims``
    dimensions, last dimension ``last``."""
    x = placed(x, name, device)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating array of dtype {dtype}, got dtype {x.dtype}")
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but this layer's parameters are {dtype}; "
                        f"cast with {name}.astype(np.{dtype}) or build the layer with "
                        f"dtype=np.{x.dtype}")
    if x.ndim not in ndims:
        want = " or ".join(f"{n}-D" for n in ndims)
        raise ValueError(f"{name} must be {want}{meaning}, got shape {shape_str(x.shape)}")
    if last is not None and x.shape[-1] != last:
        raise ValueError(f"{name} must have {last} features in its last dimension, got shape "
                         f"{shape_str(x.shape)}")
    return x


class Module:
    """Base class: a tree of modules with named parameters, gradients, buffers and generators.

    Subclasses register parameters with ``add_parameter(name, array)`` (a zero gradient of the
    same shape is made), buffers with ``add_buffer(name, array)``, and children by assigning a
    Module to an attribute (``self.embed = Embedding(...)``) or with ``add_module``. Parameters
    and buffers are readable as attributes (``layer.W``).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording_constructor_call(cls.__init__)

    def __init__(self, seed=None):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_grads", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "_rng", np.random.default_rng(seed))
        object.__setattr__(self, "_device_name", "cpu")

    # ----------------------------------------------------------------- pickling
    def __getstate__(self):
        """A pickled or deep-copied module is its parameters, gradients, buffers, generators
        and options. What the last forward kept for its backward (``_cache``: for recurrent
        layers the core's handles, which own backend buffers and cannot be pickled) is left
        behind: the copy needs a new forward before its next backward.

        A module on a device pickles its arrays as NumPy arrays (the file holds no device
        memory) with its device's name, and unpickles onto that device again (as torch does;
        move it with ``to("cpu")`` first to open the file where that device is missing);
        other device arrays the last forward left (outputs, masks) are left behind."""
        state = self.__dict__.copy()
        if "_cache" in state:
            state["_cache"] = None
        if self.device != "cpu":
            for key, value in state.items():
                if key in _STORES:
                    state[key] = OrderedDict((k, _device.to_host(v)) for k, v in value.items())
                elif _holds_device_arrays(value):
                    state[key] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        device = state.get("_device_name", "cpu")
        if device != "cpu":
            move = _device.backend_named(device).to_device
            for key in _STORES:
                self.__dict__[key] = OrderedDict((k, move(v)) for k, v in state[key].items())

    # ----------------------------------------------------------------- devices
    @property
    def device(self) -> str:
        """Where the parameters live: "cpu" (NumPy) or a device name ("cuda": CuPy)."""
        return self.__dict__.get("_device_name", "cpu")  # modules pickled before devices: cpu

    def _backend(self):
        """The _device backend of this module's arrays; None on the host."""
        device = self.device
        return None if device == "cpu" else _device.backend_named(device)

    def _xp(self):
        """The array module this module computes with: numpy, or its device's (cupy)."""
        backend = self._backend()
        return np if backend is None else backend.xp

    def host_only_reason(self) -> str | None:
        """Why this module cannot run on a device (None: it can); ``to`` raises with it."""
        return None

    def to(self, device: str) -> "Module":
        """Moves every parameter, gradient and buffer of the tree to ``device`` and returns the
        module: "cuda" (CuPy arrays on CuPy's current device; needs the CUDA build and CuPy),
        "cpu" (NumPy arrays). Arrays already there are kept (an optimiser built on them stays
        valid); build optimisers (and the Trainer) after moving the model. What the last
        forward kept for its backward is dropped. ValueError naming the module and the feature
        when part of the tree runs on the host only (``norm=`` recurrences)."""
        backend = _device.backend_named(device)
        modules = list(self.named_modules())
        if backend is not None:
            for path, m in modules:
                why = m.host_only_reason()
                if why:
                    raise ValueError(f"{path or type(m).__name__} cannot move to {device!r}: {why}; "
                                     f"keep this model on 'cpu'")
        move = backend.to_device if backend is not None else _device.to_host
        for _, m in modules:
            for store in _STORES:
                arrays = m.__dict__[store]
                for k, v in arrays.items():
                    if _device.backend_of(v) is not backend:
                        arrays[k] = move(v)
            object.__setattr__(m, "_device_name", device)
            if "_cache" in m.__dict__:
                m._cache = None
        return self

    # ----------------------------------------------------------------- registration
    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._children[name] = value
        elif name in self.__dict__.get("_children", {}):
            del self._children[name]
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_params", "_buffers"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def add_module(self, name: str, module: "Module") -> "Module":
        if not isinstance(module, Module):
            raise TypeError(f"module {name!r} must be an rnnkit.nn.Module, got {type(module).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"module names must be non-empty strings without dots, got {name!r}")
        self._children[name] = module
        object.__setattr__(self, name, module)
        return module

    def add_parameter(self, name: str, value: np.ndarray) -> np.ndarray:
        xp = _device.array_module(value)
        value = xp.ascontiguousarray(value)
        self._params[name] = value
        self._grads[name] = xp.zeros_like(value)
        return value

    def add_buffer(self, name: str, value: np.ndarray) -> np.ndarray:
        value = _device.array_module(value).ascontiguousarray(value)
        self._buffers[name] = value
        return value

    # ----------------------------------------------------------------- the tree
    def named_modules(self, prefix: str = ""):
        """(dotted name, module) for this module ('' for itself) and every descendant, in order."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return list(self._children.values())

    def _named(self, store: str):
        out = OrderedDict()
        for path, m in self.named_modules():
            for name, arr in getattr(m, store).items():
                out[f"{path}.{name}" if path else name] = arr
        return out

    def parameters(self) -> "OrderedDict[str, np.ndarray]":
        """Dotted name -> live parameter array (updated in place by optimisers)."""
        return self._named("_params")

    def grads(self) -> "OrderedDict[str, np.ndarray]":
        """Dotted name -> live gradient array, same keys and shapes as ``parameters()``."""
        return self._named("_grads")

    def buffers(self) -> "OrderedDict[str, np.ndarray]":
        """Dotted name -> live buffer (state that is not trained by gradients)."""
        return self._named("_buffers")

    def zero_grad(self) -> None:
        for g in self.grads().values():
            g[...] = 0

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters().values()))

    # ----------------------------------------------------------------- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer, by dotted name: NumPy arrays wherever the
        module lives (what checkpoints and files hold)."""
        out = OrderedDict((k, _host_copy(v)) for k, v in self.parameters().items())
        out.update((k, _host_copy(v)) for k, v in self.buffers().items())
        return out

    def load_state_dict(self, state) -> None:
        """Copies ``state`` into the parameters and buffers in place. Names must match exactly
        and shapes too (ValueError listing missing/unexpected names or the mismatched shape);
        values are cast to each array's dtype."""
        if not hasattr(state, "keys"):
            raise TypeError(f"state must be a dict of arrays, got {type(state).__name__}")
        own = self.parameters()
        own.update(self.buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise ValueError(f"state does not match this module: missing {missing}, unexpected "
                             f"{unexpected}")
        converted = {}
        for k, arr in own.items():
            v = _device.to_host(state[k])  # from either side; copied to where arr lives below
            if v.shape != arr.shape:
                raise ValueError(f"state[{k!r}] has shape {shape_str(v.shape)} but the module's "
                                 f"{k} has shape {shape_str(arr.shape)}")
            if v.dtype.kind not in "fiu":
                raise TypeError(f"state[{k!r}] must be numeric, got dtype {v.dtype}")
            converted[k] = v
        for k, arr in own.items():  # only copy once everything has been checked
            arr[...] = _device.put_like(converted[k].astype(arr.dtype, copy=False), arr)

    # ----------------------------------------------------------------- randomness
    def seed(self, seed) -> None:
        """Reseeds the generator of this module and of every descendant, deterministically:
        the i-th module of ``named_modules()`` gets the i-th child of ``SeedSequence(seed)``."""
        modules = [m for _, m in self.named_modules()]
        for m, ss in zip(modules, np.random.SeedSequence(seed).spawn(len(modules))):
            object.__setattr__(m, "_rng", np.random.Generator(np.random.PCG64(ss)))

    def rng_state(self) -> dict:
        """A picklable snapshot {module path: bit-generator state} of every generator."""
        return {path: m._rng.bit_generator.state for path, m in self.named_modules()}

    def set_rng_state(self, state) -> None:
        """Restores a snapshot taken by ``rng_state()`` on a module of the same structure."""
        modules = dict(self.named_modules())
        if not isinstance(state, dict) or set(state) != set(modules):
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state must be an rng_state() of a module with the same tree "
                             f"{sorted(modules)}, got {got}")
        for path, m in modules.items():
            bitgen = getattr(np.random, state[path]["bit_generator"])()
            bitgen.state = state[path]
            object.__setattr__(m, "_rng", np.random.Generator(bitgen))

    # ----------------------------------------------------------------- computation
    def forward(self, x, *, lengths=None, training=False):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._children:
            return head + ")"
        lines = [head]
        for name, child in self._children.items():
            lines.append("  (" + name + "): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


_STORES = ("_params", "_grads", "_buffers")


def _host_copy(value):
    """A NumPy copy of an array from either side."""
    return value.copy() if _device.backend_of(value) is None else _device.to_host(value)


def _holds_device_arrays(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_device_arrays(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_device_arrays(v) for v in value.values())
    return not isinstance(value, Module) and _device.backend_of(value) is not None


def _recording_constructor_call(init):
    """Wraps a subclass's ``__init__`` so that the instance keeps the arguments of the call that
    built it (``_constructor_call``: positional tuple, keyword dict). ``rnnkit.save`` writes them
    so that ``rnnkit.load`` rebuilds the same structure before loading the weights. Only the
    outermost call counts: the ``super().__init__`` calls it makes find the record already there."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_constructor_call" not in self.__dict__:
            object.__setattr__(self, "_constructor_call", (args, dict(kwargs)))
        init(self, *args, **kwargs)

    return __init__


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class Sequential(Module):
    """Modules applied one after another: ``Sequential(m1, m2, ...)`` (named "0", "1", ...),
    ``Sequential(OrderedDict(embed=..., rnn=...))``, ``Sequential(embed=..., rnn=...)`` or
    ``Sequential([("embed", m1), ("rnn", m2)])``.

    forward passes ``lengths`` and ``training`` to every child whose forward accepts them, and
    each child's output to the next; backward runs the children's backward in reverse order
    (stopping when a child returns None, as Embedding does for its integer input).
    """

    def __init__(self, *modules, **named):
        super().__init__()
        items = []
        if len(modules) == 1 and isinstance(modules[0], dict):
            items = list(modules[0].items())
        elif len(modules) == 1 and isinstance(modules[0], (list, tuple)) and modules[0] \
                and all(isinstance(p, tuple) and len(p) == 2 for p in modules[0]):
            items = list(modules[0])
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        items += list(named.items())
        if not items:
            raise ValueError("Sequential needs at least one module")
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: module {name!r} must be an rnnkit.nn.Module, got "
                                f"{type(m).__name__}")
            if name in self._children:
                raise ValueError(f"Sequential: duplicate module name {name!r}")
            self.add_module(name, m)

    def __len__(self):
        return len(self._children)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return list(self._children.values())[key]
        return self._children[key]

    def forward(self, x, *, lengths=None, training=False):
        for m in self._children.values():
            kw = {}
            if _accepts(m.forward, "lengths"):
                kw["lengths"] = lengths
            if _accepts(m.forward, "training"):
                kw["training"] = training
            x = m.forward(x, **kw)
        return x

    def backward(self, grad):
        for m in reversed(list(self._children.values())):
            grad = m.backward(grad)
            if grad is None:
                return None
        return grad
