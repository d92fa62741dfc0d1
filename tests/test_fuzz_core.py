"""Property-based fuzzing of the entry points that reach the C++ core: rnnkit.functional
forward/backward (every cell and LSTM option), rnnkit.dropin and the rnnkit.nn recurrent
layers. Random shapes (0 and 1 included), dtypes, strides, lengths, NaN/Inf and mismatched
caches end in a result or a documented TypeError/ValueError; never a crash or a hang. Valid
finite calls must equal the NumPy reference. Also the regressions of what fuzzing found: a
call whose buffers exceed the machine's memory fails before allocating, and an empty state
(H = 0) with T*B in the trillions returns at once. Profiles: tests/fuzz_support.py."""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import event, given, strategies as st  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit import dropin, functional as F, nn, reference as R  # noqa: E402

from fuzz_support import fuzz_settings, watchdog  # noqa: E402

DOCUMENTED = (TypeError, ValueError)
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
VARIANTS = ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "lstm_peep", "lstm_proj_peep", "gru",
            "gru_cho"]


def _values(rng, shape, dtype, special):
    a = (0.5 * rng.standard_normal(shape)).astype(dtype)
    if special and a.size:
        flat = a.reshape(-1)
        idx = rng.integers(0, a.size, max(1, a.size // 4))
        flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf, 1e30, -1e30], dtype=dtype), idx.size)
    return a


def _layout(rng, a, how):
    """The same values as a Fortran-ordered or strided (non-contiguous) array, or as is."""
    if how == "fortran" and a.ndim > 1:
        return np.asfortranarray(a)
    if how == "strided" and a.ndim:
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        big[..., ::2] = a
        return big[..., ::2]
    return a


@st.composite
def recurrent_calls(draw):
    """(variant, args dict, kwargs dict, mutation or None, seed)."""
    variant = draw(st.sampled_from(VARIANTS))
    T, B, I, H = (draw(st.integers(0, 4)) for _ in range(4))
    P = draw(st.integers(1, 3)) if "proj" in variant else 0
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    special = draw(st.booleans()) and draw(st.booleans())
    layout = draw(st.sampled_from(["c", "c", "fortran", "strided"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    G, S = GATES[variant.split("_")[0]], P or H
    args = {"x": _values(rng, (T, B, I), dtype, special),
            "h0": draw(st.sampled_from([None, "array"])),
            "Wx": _values(rng, (I, G * H), dtype, False) * 0.5,
            "Wh": _values(rng, (S, G * H), dtype, False) * 0.5,
            "b": _values(rng, (G * H,), dtype, False),
            "bh": draw(st.sampled_from([None, "array"]))}
    if args["h0"]:
        args["h0"] = _values(rng, (B, S), dtype, special)
    if args["bh"]:
        args["bh"] = _values(rng, (G * H,), dtype, False)
    kwargs = {}
    if variant.startswith("lstm"):
        args["c0"] = _values(rng, (B, H), dtype, special) if draw(st.booleans()) else None
        if P:
            kwargs["Wr"] = _values(rng, (H, P), dtype, False)
        if "peep" in variant:
            kwargs["peepholes"] = _values(rng, (3, H), dtype, False)
    if variant.startswith("rnn"):
        kwargs["nonlinearity"] = variant.split("_")[1]
    if variant == "gru_cho":
        kwargs["linear_before_reset"] = False
    if draw(st.booleans()):
        kwargs["lengths"] = rng.integers(0, T + 1, B)
    kwargs["reverse"] = draw(st.booleans())
    if draw(st.booleans()) and not (kwargs["reverse"] and "lengths" in kwargs):
        kwargs["segment"] = draw(st.integers(1, 3))
    for name in list(args):
        if isinstance(args[name], np.ndarray):
            args[name] = _layout(rng, args[name], layout)
    mutation = draw(st.one_of(st.none(), st.tuples(
        st.sampled_from(sorted(set(args) | set(kwargs) - {"reverse", "nonlinearity", "linear_before_reset"})),
        st.sampled_from(["shape", "dtype", "ndim", "none", "list", "scalar", "bad_length"]))))
    if mutation:
        name, kind = mutation
        store = args if name in args else kwargs
        value = store[name]
        if kind == "shape" and isinstance(value, np.ndarray):
            store[name] = np.zeros(tuple(d + 1 for d in value.shape), value.dtype)
        elif kind == "dtype" and isinstance(value, np.ndarray):
            other = {np.dtype(np.float32): np.float64, np.dtype(np.float64): np.float16}.get(value.dtype, np.float32)
            store[name] = value.astype(draw(st.sampled_from([other, np.int32, np.complex64, object, bool])))
        elif kind == "ndim" and isinstance(value, np.ndarray):
            store[name] = value[..., None]
        elif kind == "none":
            store[name] = None
        elif kind == "list" and isinstance(value, np.ndarray):
            store[name] = value.tolist()
        elif kind == "scalar":
            store[name] = draw(st.sampled_from([0, 1.5, "x", -1, True]))
        elif kind == "bad_length" and name == "lengths" and B:
            bad = value.copy()
            bad[draw(st.integers(0, B - 1))] = draw(st.sampled_from([-1, T + 1, 2**62]))
            store[name] = bad
    return variant, args, kwargs, mutation, seed


def _call_forward(module, variant, args, kwargs):
    cell = variant.split("_")[0]
    fn = getattr(module, f"{cell}_forward")
    states = [args["h0"]] + ([args["c0"]] if cell == "lstm" else [])
    return fn(args["x"], *states, args["Wx"], args["Wh"], args["b"], args["bh"], **kwargs)


@fuzz_settings
@given(recurrent_calls(), st.integers(0, 2**32 - 1))
def test_functional_forward_backward_fuzz(call, grad_seed):
    variant, args, kwargs, mutation, _ = call
    cell = variant.split("_")[0]
    with watchdog(120):
        try:
            out = _call_forward(F, variant, args, kwargs)
        except DOCUMENTED:
            assert mutation is not None, "a valid call raised"
            event("rejected")
            return
        *results, cache = out
        T, B = np.shape(args["x"])[:2]
        x = np.asarray(args["x"])
        assert results[0].shape[:2] == (T, B) and results[0].dtype == x.dtype
        rng = np.random.default_rng(grad_seed)
        dy = rng.standard_normal(results[0].shape).astype(results[0].dtype)
        dstates = [rng.standard_normal(r.shape).astype(r.dtype) if rng.random() < 0.7 else None
                   for r in results[1:]]
        grads = getattr(F, f"{cell}_backward")(dy, *dstates, cache)
        assert grads[0].shape == x.shape
        if mutation is None and np.all([np.isfinite(a).all() for a in args.values() if isinstance(a, np.ndarray)]):
            event("compared with the reference")
            # equal to the NumPy reference (which takes no segment=)
            ref_kwargs = {k: v for k, v in kwargs.items() if k != "segment"}
            *ref, ref_cache = _call_forward(R, variant, args, ref_kwargs)
            tol = dict(rtol=2e-4, atol=2e-4) if x.dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
            for got, want in zip(results, ref):
                np.testing.assert_allclose(got, want, **tol)
            ref_grads = getattr(R, f"{cell}_backward")(dy, *dstates, ref_cache)
            for got, want in zip(grads, ref_grads):
                if want is None:
                    assert got is None
                else:
                    np.testing.assert_allclose(got, want, **tol)


@fuzz_settings
@given(recurrent_calls(), recurrent_calls(), st.sampled_from(["swap", "edit_cell", "edit_spans",
                                                               "handles", "twice", "inference"]))
def test_mismatched_caches_are_rejected(first, second, how):
    """A cache from another call, an edited cache, or one used twice: a documented error or
    (using a cache twice is allowed) the same gradients again; never a crash."""
    import dataclasses
    v1, a1, k1, m1, _ = first
    v2, a2, k2, m2, _ = second
    with watchdog(120):
        try:
            out1 = _call_forward(F, v1, a1, k1)
            out2 = _call_forward(F, v2, a2, dict(k2, inference=how == "inference"))
        except DOCUMENTED:
            return
        c1, c2 = out1[-1], out2[-1]
        y1 = out1[0]
        cell1 = v1.split("_")[0]
        dy = np.ones_like(y1)
        nstates = 2 if cell1 == "lstm" else 1
        if how == "swap":
            cache = c2
        elif how == "edit_cell":
            cache = dataclasses.replace(c1, cell={"rnn": "gru", "gru": "lstm", "lstm": "rnn_tanh"}[cell1])
        elif how == "edit_spans":
            cache = dataclasses.replace(c1, spans=((0, 10**9),) * len(c1.spans))
        elif how == "handles":
            cache = dataclasses.replace(c1, handles=c2.handles if c2 is not None else ("x",))
        elif how == "twice":
            first_grads = getattr(F, f"{cell1}_backward")(dy, *([None] * nstates), c1)
            cache = c1
        else:
            cache = c2  # None: inference stores nothing
        try:
            grads = getattr(F, f"{cell1}_backward")(dy, *([None] * nstates), cache)
        except DOCUMENTED:
            return
        if how == "twice":
            for a, b in zip(grads, first_grads):
                assert (a is None and b is None) or np.array_equal(a, b, equal_nan=True)


@fuzz_settings
@given(st.sampled_from(["rnn", "lstm", "gru"]), st.integers(0, 3), st.integers(0, 3),
       st.integers(0, 3), st.integers(0, 3), st.booleans(), st.integers(0, 2**32 - 1),
       st.sampled_from([None, "shape", "dtype", "list"]))
def test_dropin_fuzz(cell, N, T, D, H, special, seed, mutation):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    x, h0 = _values(rng, (N, T, D), np.float64, special), _values(rng, (N, H), np.float64, special)
    Wx, Wh, b = (_values(rng, s, np.float64, False) for s in ((D, G * H), (H, G * H), (G * H,)))
    if mutation == "shape":
        Wh = np.zeros((H + 1, G * H))
    elif mutation == "dtype":
        # inf and magnitudes past 2**63 have no int64: clip them so the cast is exact
        x = np.clip(np.nan_to_num(x, posinf=0.0, neginf=0.0), -1e18, 1e18).astype(np.int64)
    elif mutation == "list":
        x = x.tolist()
    # NaN and inf inputs make NumPy's products warn: the test asserts exceptions, not warnings
    with watchdog(120), np.errstate(invalid="ignore", over="ignore"):
        try:
            h, cache = getattr(dropin, f"{cell}_forward")(x, h0, Wx, Wh, b)
            grads = getattr(dropin, f"{cell}_backward")(np.ones_like(h), cache)
            assert grads[0].shape == np.shape(x)
            hs, step_cache = getattr(dropin, f"{cell}_step_forward")(
                *([np.asarray(x)[:, 0] if T else np.zeros((N, D)), h0]
                  + ([np.zeros((N, H))] if cell == "lstm" else [])), Wx, Wh, b)
            step_out = hs[0] if cell == "lstm" else hs
            if cell == "lstm":
                getattr(dropin, "lstm_step_backward")(np.ones_like(step_out), np.ones_like(hs[1]), step_cache)
            else:
                getattr(dropin, f"{cell}_step_backward")(np.ones_like(step_out), step_cache)
        except DOCUMENTED:
            pass


@fuzz_settings
@given(st.sampled_from(["RNN", "LSTM", "GRU"]), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 2), st.booleans(), st.integers(0, 3), st.integers(0, 3),
       st.sampled_from([None, "lengths", "bad_lengths", "nan", "dtype", "shape", "batch_first"]),
       st.integers(0, 2**32 - 1))
def test_nn_recurrent_layers_fuzz(kind, I, H, layers, bidirectional, T, B, twist, seed):
    rng = np.random.default_rng(seed)
    options = {}
    if kind == "LSTM" and rng.random() < 0.5:
        options = {"proj_size": int(rng.integers(1, H + 1))} if rng.random() < 0.5 else {"peepholes": True}
    layer = getattr(nn, kind)(I, H, layers, bidirectional=bidirectional, seed=seed % 1000, **options)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    kwargs = {}
    if twist == "lengths" and B:
        kwargs["lengths"] = rng.integers(0, T + 1, B)
    elif twist == "bad_lengths":
        kwargs["lengths"] = np.full(B + 1, T + 1)
    elif twist == "nan" and x.size:
        x.flat[0] = np.nan
    elif twist == "dtype":
        x = x.astype(np.float64)
    elif twist == "shape":
        x = np.zeros((T, B, I + 1), np.float32)
    with watchdog(120):
        try:
            out = layer.forward(x, training=True, **kwargs)
            y = out[0] if isinstance(out, tuple) else out
            grad = np.ones_like(y)
            layer.backward((grad,) + tuple(None for _ in out[1:]) if isinstance(out, tuple) else grad)
        except DOCUMENTED:
            assert twist is not None


# ---- regressions --------------------------------------------------------------------------

def test_buffers_beyond_memory_fail_before_allocating():
    """T*B*H in the trillions: MemoryError naming the call and its sizes, at once. x can be
    (T, B, 0) (no memory), so only the outputs and buffers are huge."""
    f32 = np.float32
    x = np.empty((10**6, 10**6, 0), f32)
    for kwargs in ({}, {"inference": True}):
        with watchdog(60), pytest.raises(MemoryError, match=r"lstm forward \(T=1000000, B=1000000, I=0, H=2\)"):
            F.lstm_forward(x, None, None, np.empty((0, 8), f32), np.zeros((2, 8), f32), np.zeros(8, f32), **kwargs)
    # sizes whose byte count overflows 64 bits
    with pytest.raises(MemoryError, match="2\\*\\*64"):
        F.rnn_forward(np.empty((2**30, 2**30, 0), f32), None, np.empty((0, 16), f32), np.zeros((16, 16), f32),
                      np.zeros(16, f32))


def test_empty_state_with_huge_time_and_batch_returns_at_once():
    """H = 0: every output is empty; the loops used to visit all T*B positions (a hang at
    10**9 x 10**9). Backward's dx is (T, B, 0), also empty."""
    f32 = np.float32
    x = np.empty((10**9, 10**9, 0), f32)
    with watchdog(30):
        for cell in ("rnn", "gru", "lstm"):
            states = [None, None] if cell == "lstm" else [None]
            *outs, cache = getattr(F, f"{cell}_forward")(x, *states, np.empty((0, 0), f32),
                                                         np.empty((0, 0), f32), np.empty(0, f32))
            assert outs[0].shape == (10**9, 10**9, 0)
            grads = getattr(F, f"{cell}_backward")(None, *([None] * len(states)), cache)
            assert grads[0].shape == x.shape


def test_empty_state_backward_zeroes_dx():
    """H = 0 with I > 0: x reaches no state, so dx is exactly zero (not left uninitialised)."""
    x = np.ones((3, 2, 4))
    y, hT, cache = F.gru_forward(x, None, np.empty((4, 0)), np.empty((0, 0)), np.empty(0))
    dx = F.gru_backward(np.empty((3, 2, 0)), None, cache)[0]
    assert dx.shape == (3, 2, 4) and not dx.any()


def test_sizes_just_below_memory_are_not_refused_by_the_check():
    """The check compares with the machine's memory: an ordinary call passes it."""
    x = np.zeros((50, 64, 8), np.float32)
    y, hT, cT, cache = F.lstm_forward(x, None, None, np.zeros((8, 128), np.float32),
                                      np.zeros((32, 128), np.float32), np.zeros(128, np.float32))
    assert y.shape == (50, 64, 32) and rnnkit.get_num_threads() >= 1


# ---- the bindings' own guards: _core.forward/backward called directly with anything ------

def _raw_array(draw, rng):
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.float16, ">f4", np.int32]))
    a = rng.standard_normal(shape).astype(dtype) if np.dtype(dtype).kind == "f" else \
        rng.integers(-2, 6, shape).astype(dtype)
    how = draw(st.sampled_from(["c", "c", "fortran", "strided", "readonly"]))
    if how == "readonly":
        a.flags.writeable = False
        return a
    return _layout(rng, a, how)


@st.composite
def raw_core_calls(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    T, B, I, H = (draw(st.integers(0, 4)) for _ in range(4))
    cell = draw(st.sampled_from(["rnn_tanh", "rnn_relu", "lstm", "lstm", "gru", "gru", "bogus"]))
    G = {"lstm": 4, "gru": 3}.get(cell, 1)
    P = draw(st.integers(0, 3)) if cell == "lstm" else 0
    S = P or H
    right = {"x": (T, B, I), "h0": (B, S), "c0": (B, H), "Wx": (I, G * H), "Wh": (S, G * H),
             "b": (G * H,), "bh": (G * H,), "lengths": (B,), "recurrent_mask": (B, S),
             "Wr": (H, P), "peepholes": (3, H)}
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    args = {name: rng.standard_normal(shape).astype(dtype) for name, shape in right.items()}
    args["lengths"] = rng.integers(0, T + 1, B)
    for name in ("h0", "c0", "bh", "lengths", "recurrent_mask", "peepholes"):
        if draw(st.booleans()):
            args[name] = None
    if cell != "lstm":  # options of other cells: mostly absent (present: a ValueError)
        args["peepholes"] = None
    if not P:
        args["Wr"] = None
    for name in draw(st.lists(st.sampled_from(sorted(right)), max_size=2)):
        kind = draw(st.sampled_from(["junk", "none", "bad_lengths"]))
        if kind == "bad_lengths" and B:
            args["lengths"] = rng.integers(0, T + 1, B)
            args["lengths"][draw(st.integers(0, B - 1))] = draw(st.sampled_from([-1, T + 1, -2**63]))
        elif kind == "none":
            args[name] = None
        else:
            args[name] = _raw_array(draw, rng)
    gate_block = draw(st.sampled_from([[], list(range(G)), [0] * G, list(range(G + 1)), [G] * G]))
    return cell, args, gate_block, draw(st.booleans()), draw(st.booleans()), draw(st.booleans())


@fuzz_settings
@given(raw_core_calls(), st.integers(0, 2**32 - 1))
def test_core_bindings_guard_themselves(call, seed):
    """What rnnkit.functional never sends (wrong shapes, dtypes, strides, read-only outputs,
    lengths out of range, a bad gate permutation) reaches _core directly: the bindings' checks
    raise TypeError/ValueError; nothing reaches the kernels unchecked."""
    from rnnkit import _core
    cell, a, gate_block, reverse, training, keep = call
    with watchdog(120):
        try:
            y, hT, cT, handle = _core.forward(
                cell, a["x"], a["h0"], a["c0"], a["Wx"], a["Wh"], a["b"], a["bh"], a["lengths"],
                reverse, a["recurrent_mask"], True, gate_block, training, keep_reserve=keep,
                Wr=a["Wr"], peepholes=a["peepholes"])
        except DOCUMENTED as exc:
            event(f"forward: {type(exc).__name__}")
            return
        event("forward ran")
        if handle is None:
            return
        rng = np.random.default_rng(seed)
        T, B, _, H = handle.dims
        S = handle.state_size
        grads = [rng.standard_normal(s).astype(handle.dtype) if rng.random() < 0.6 else
                 (None if rng.random() < 0.5 else rng.standard_normal(s[:-1] + (s[-1] + 1,)))
                 for s in ((T, B, S), (B, S), (B, H))]
        try:
            out = _core.backward(handle, *grads)
        except DOCUMENTED:
            return
        event("backward ran")
        assert out[0].shape == (T, B, handle.dims[2])


def test_segment_with_an_empty_batch_or_state_does_not_loop_over_segments():
    """Regression: segment=1 with x (10**12, 0, I) ran 10**12 empty segments in Python (a
    hang); an empty batch or state is one call. Backward of it gives empty gradients."""
    f32 = np.float32
    with watchdog(30):
        y, hT, cache = F.rnn_forward(np.empty((10**12, 0, 3), f32), None, np.zeros((3, 2), f32),
                                     np.zeros((2, 2), f32), np.zeros(2, f32), segment=1)
        assert y.shape == (10**12, 0, 2) and len(cache.handles) == 1
        dx, dh0, dWx, *_ = F.rnn_backward(None, None, cache)
        assert dx.shape == (10**12, 0, 3) and not dWx.any()
        y, hT, cache = F.gru_forward(np.ones((10**6, 1, 3), f32), None, np.zeros((3, 0), f32),
                                     np.zeros((0, 0), f32), np.zeros(0, f32), segment=1)
        assert len(cache.handles) == 1 and not F.gru_backward(None, None, cache)[0].any()


@fuzz_settings
@given(st.sampled_from(["rnn", "lstm", "gru"]), st.sampled_from([0, 1, 7, 10**6, 10**9, 10**12]),
       st.sampled_from([0, 1, 5, 10**6, 10**9, 10**12]), st.integers(0, 3), st.integers(0, 3),
       st.booleans(), st.sampled_from([None, 1, 4]), st.sampled_from([np.float32, np.float64]))
def test_empty_or_absurd_sizes_return_at_once_or_raise_memory_error(cell, T, B, I, H, inference,
                                                                      segment, dtype):
    """Sizes that hold no data (a 0 anywhere) or that no machine holds: an immediate result or
    MemoryError, never a loop over trillions of empty positions."""
    hypothesis.assume(T * B * I <= 10**5)  # x itself is real memory
    hypothesis.assume(T * B * max(H, I, 1) * 8 * 4 < 2**62)  # NumPy's own size limit
    S = H
    data = max(T * B * S, B * S)  # elements of y and of the final states
    empty = data == 0
    hypothesis.assume(empty or data <= 10**5 or data * 4 > 10**13)
    G = GATES[cell]
    x = np.zeros((T, B, I), dtype)
    states = [None, None] if cell == "lstm" else [None]
    with watchdog(60):
        try:
            *outs, cache = getattr(F, f"{cell}_forward")(
                x, *states, np.zeros((I, G * H), dtype), np.zeros((H, G * H), dtype),
                np.zeros(G * H, dtype), inference=inference, segment=segment)
        except MemoryError as exc:
            assert not empty and "more than this machine" in str(exc)
            return
        assert outs[0].shape == (T, B, S)
        if not inference:
            grads = getattr(F, f"{cell}_backward")(None, *([None] * len(states)), cache)
            assert grads[0].shape == (T, B, I) and not any(g.any() for g in grads if g is not None)


@fuzz_settings
@given(st.lists(st.integers(0, 4), max_size=3), st.integers(0, 6), st.integers(0, 4),
       st.sampled_from([np.float32, np.float64, np.int64]), st.integers(0, 2**32 - 1),
       st.sampled_from([None, "negative", "too_big", "float_ids", "padding", "bad_padding",
                        "dout_shape", "out_buffer", "readonly_out", "edited_cache"]))
def test_embedding_fuzz(shape, V, D, dtype, seed, twist):
    """Lookups and their scatter-add gradient (C++): ids out of range are IndexError naming
    the position, wrong types TypeError, shapes ValueError; valid calls equal np.add.at."""
    import dataclasses
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, max(V, 1), shape)
    W = rng.standard_normal((V, D)).astype(dtype)
    kwargs, out = {}, None
    if twist == "negative" and ids.size:
        ids.flat[0] = -1
    elif twist == "too_big" and ids.size:
        ids.flat[-1] = V + 2**40
    elif twist == "float_ids":
        ids = ids.astype(np.float64)
    elif twist == "padding" and V:
        kwargs["padding_idx"] = int(rng.integers(0, V))
    elif twist == "bad_padding":
        kwargs["padding_idx"] = V + 1
    with watchdog(60):
        try:
            emb, cache = F.embedding_forward(ids, W, **kwargs)
        except (TypeError, ValueError, IndexError):
            return
        dout = rng.standard_normal(emb.shape).astype(emb.dtype)
        if twist == "dout_shape":
            dout = dout[..., None]
        elif twist in ("out_buffer", "readonly_out"):
            out = np.ones((V, D), W.dtype)
            if twist == "readonly_out":
                out.flags.writeable = False
        elif twist == "edited_cache":
            fields = [f.name for f in dataclasses.fields(cache)]
            cache = dataclasses.replace(cache, **{fields[0]: np.full(3, 10**6)})
        try:
            dW = F.embedding_backward(dout, cache, out=out)
        except (TypeError, ValueError, IndexError):
            assert twist in ("dout_shape", "readonly_out", "edited_cache")
            return
        if twist is None or twist == "out_buffer":
            want = np.zeros((V, D), W.dtype) if out is None else np.ones((V, D), W.dtype)
            np.add.at(want, ids.reshape(-1), dout.reshape(ids.size, D))
            np.testing.assert_allclose(dW, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_projected_lstm_with_no_hidden_units_matches_the_reference(dtype):
    """Regression (UBSan: memcpy from a null pointer, size 0): H = 0 with a projection P > 0
    runs the time loop with empty gate buffers, which std::vector hands out as null. h is then
    m @ Wr over no units: zero at every valid step, h0 carried through empty rows."""
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((3, 3, 2)).astype(dtype), rng.standard_normal((3, 2)).astype(dtype)
    Wx, Wh, b, Wr = (np.zeros(s, dtype) for s in ((2, 0), (2, 0), (0,), (0, 2)))
    for lengths, reverse, segment in ((None, False, None), (np.array([3, 0, 1]), False, None),
                                      (None, True, None), (np.array([3, 0, 1]), False, 1)):
        y, hT, cT, cache = F.lstm_forward(x, h0, None, Wx, Wh, b, Wr=Wr, lengths=lengths,
                                          reverse=reverse, segment=segment)
        ry, rhT, rcT, rcache = R.lstm_forward(x, h0, None, Wx, Wh, b, Wr=Wr, lengths=lengths, reverse=reverse)
        np.testing.assert_array_equal(y, ry)
        np.testing.assert_array_equal(hT, rhT)
        grads = F.lstm_backward(np.ones_like(y), np.ones_like(hT), None, cache)
        for got, want in zip(grads, R.lstm_backward(np.ones_like(y), np.ones_like(hT), None, rcache)):
            assert (got is None and want is None) or np.allclose(got, want)
