"""Recurrent-layer and drop-in benchmarks: rnnkit vs plain NumPy vs torch.nn vs ONNX Runtime, same run, same threads.

    rnnkit bench [--threads 2] [--quick]                  (needs google-benchmark: the bench extra)
    python bench/bench_rnn.py [...]     (from a checkout; also runs "dropin")

Options: [--threads 2] [--quick]
        [--suite recurrent,dropin] [--cells rnn,lstm,gru] [--modes inference,train]
        [--impls rnnkit,numpy,torch,onnxruntime] [--dtypes float32,float64] [--shapes 50x1x128x128,...]
        [--repetitions 5] [--min-time 0.3] [--csv PATH] [--markdown PATH]

Suite "recurrent" (time-major): per cell x shape (T, B, I, H) x mode x dtype (float32 and
float64 by default; every implementation gets arrays of that dtype),
- rnnkit:  rnnkit.functional.<cell>_forward (inference=True) / forward + <cell>_backward;
- numpy:   rnnkit.reference, the plain NumPy implementation with the same signatures;
- torch:   torch.nn.RNN/LSTM/GRU (when importable; .double() for float64), weights copied from
           the others; inference under torch.no_grad(), train = forward + autograd backward of
           sum(y * G) with x.requires_grad (every implementation computes dx and all weight
           gradients);
- onnxruntime: inference only, float32 only (ONNX Runtime has no float64 kernels for these
           ops), when onnx and onnxruntime are importable: the same layer exported by
           rnnkit.interop.to_onnx (one time-major RNN/LSTM/GRU node with sequence_lens = T, a
           cast and a squeeze around it), run by the CPU execution provider with
           intra_op_num_threads = --threads and its default spin-waiting.
All of them get both biases (b and bh), h0 = 0, the same inputs (the float32 ones are the float64
ones rounded), and one parity check of their outputs before timing, with a tolerance per dtype
(a mismatch is flagged in the CSV and table, not hidden).

GEMM floor: for each cell x shape x mode x dtype, NumPy's matmul (its BLAS, same threads, same
dtype, preallocated outputs) times exactly the matrix products that cell call needs, with the
same operand shapes (G = 1, 4, 3 for rnn, lstm, gru):
- inference: (T*B, I) @ (I, G*H) once, then T x (B, H) @ (H, G*H);
- train: those, plus T x (B, G*H) @ (G*H, H) (dA @ Wh^T) and dx = (T*B, G*H) @ (G*H, I),
  dWx = (I, T*B) @ (T*B, G*H), dWh = (H, T*B) @ (T*B, G*H).
Best of at least 3 runs, timed in the same process before the google_benchmark run. The table
reports it next to rnnkit's time: "% of GEMM rate" = GEMM ms / rnnkit ms * 100 (100 %: rnnkit
runs the whole cell, gate maths included, in the time NumPy's BLAS needs for its GEMMs alone).

Suite "dropin" (float64, batch-first, notebook size N=50, T=20, D=H=128, V=1000):
rnnkit.dropin vs the plain NumPy versions in rnnkit.reference_dropin (also the tests' oracle).

Timing: google_benchmark, wall-clock ("real") time, a fixed number of iterations per
repetition chosen from one warm-up call (about --min-time seconds per repetition, at least one
call), --repetitions repetitions, optionally (--interleave) in random interleaving with the
other benchmarks (so load from other processes spreads over all contenders), reported as the
median. Slow recurrent cases, those whose parity call took 1 s or more (an inference call; a
train call takes longer still), get one call per repetition, max(3, --repetitions - 2)
repetitions (3 by default) and no separate warm-up call (the median drops a cold first
repetition): calls at 100x128x1024x1024 take seconds (NumPy's LSTM train: 7 s in float32, 15 s
in float64 on 2 threads of a quiet 2-core machine), and this keeps the whole default grid
affordable. Threads: rnnkit.set_num_threads(n), torch.set_num_threads(n) and
OPENBLAS_NUM_THREADS=n for NumPy's BLAS, all the same n.

Output: CSV (header comment lines name the machine, threads, ISA, BLAS, the sgemm/dgemm peaks
and how the GEMM floors were measured; one row per benchmark with its dtype, GEMM floor and
% of GEMM rate) and markdown tables of medians, one recurrent table per dtype, with the ratios
numpy/rnnkit, torch/rnnkit and onnxruntime/rnnkit (> 1: rnnkit is faster), the GEMM floor,
rnnkit's GFLOP/s (flops of exactly those GEMMs), its % of GEMM rate and its % of the FMA peak.
The FMA peak is measured in the same run: a register-only FMA loop of the active ISA on every
thread at once (rnnkit._core.fma_peak_gflops), in the header next to the sgemm figure.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time

from .cells import cell_names, get_cell

SHAPES = [(50, 1, 128, 128), (50, 32, 128, 256), (100, 64, 256, 512), (35, 20, 650, 650),
          (100, 128, 1024, 1024)]
QUICK_SHAPES = [(5, 2, 8, 8), (4, 3, 16, 12)]
CELLS = cell_names()
MODES = ("inference", "train")
IMPLS = ("rnnkit", "numpy", "torch", "onnxruntime")
DTYPES = ("float32", "float64")
SLOW_CALL_S = 1.0  # calls at least this long: 3 repetitions, no separate warm-up call (register)
# Parity tolerance (max |y - y_rnnkit| over the outputs, which lie in (-1, 1)) per dtype.
# float32: 2e-3 is far above float32 rounding differences after T steps (~1e-5) and far below
# any real disagreement. float64: the implementations differ by summation order only
# (measured vs rnnkit: 3e-16 to 4e-15 for numpy and torch at the default shapes); 1e-9 leaves six
# orders of margin for that and still catches a path that silently computes in float32 (rnnkit's
# float32 outputs differ from its float64 ones by 2e-7 to 1.4e-6 at those shapes).
PARITY_TOL = {"float32": 2e-3, "float64": 1e-9}
DROPIN_SIZE = dict(N=50, T=20, D=128, H=128, V=1000)
QUICK_DROPIN_SIZE = dict(N=4, T=3, D=8, H=8, V=20)


def parse_args(argv=None, csv_dir=None, prog="rnnkit bench"):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repetitions (smoke test)")
    p.add_argument("--suite", default="recurrent,dropin",
                   help="recurrent,dropin; or e2e alone (whole training epochs vs torch)")
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--dtypes", default=",".join(DTYPES), help="recurrent suite: float32,float64")
    p.add_argument("--shapes", default=None,
                   help="comma-separated TxBxIxH (e.g. 50x1x128x128) or indices into the default list")
    p.add_argument("--repetitions", type=int, default=None, help="repetitions (default 5, quick 3)")
    p.add_argument("--min-time", type=float, default=None,
                   help="target seconds per repetition (default 0.3, quick 0.01)")
    p.add_argument("--csv", default=None,
                   help="CSV path (default: " + (os.path.join(csv_dir, "bench_rnn[_quick].csv") if csv_dir
                                                 else "none written") + ")")
    p.add_argument("--verbose", action="store_true", help="also print google_benchmark's own report")
    p.add_argument("--markdown", default=None, help="also write the markdown tables here")
    p.add_argument("--interleave", action="store_true",
                   help="randomly interleave the repetitions of all benchmarks (default: each "
                        "benchmark's repetitions back to back, after --warmup)")
    p.add_argument("--warmup", type=float, default=None,
                   help="seconds each benchmark runs untimed first (default 0.2, quick 0.02): "
                        "lets the previous contender's BLAS/OpenMP threads stop spinning")
    args = p.parse_args(argv)

    def pick(value, allowed, what):
        items = [v.strip() for v in value.split(",") if v.strip()]
        bad = [v for v in items if v not in allowed]
        if bad or not items:
            p.error(f"--{what}: {bad or value!r} not in {', '.join(allowed)}")
        return items

    args.suite = pick(args.suite, ("recurrent", "dropin", "e2e"), "suite")
    if "e2e" in args.suite and len(args.suite) > 1:
        # The microbenchmarks set OMP_WAIT_POLICY=PASSIVE for torch (see main); whole epochs
        # compare with torch as users run it, so they get a process of their own.
        p.error("--suite e2e runs alone (torch keeps its default OpenMP settings there)")
    args.cells = pick(args.cells, CELLS, "cells")
    args.modes = pick(args.modes, MODES, "modes")
    args.impls = pick(args.impls, IMPLS, "impls")
    args.dtypes = pick(args.dtypes, DTYPES, "dtypes")
    defaults = QUICK_SHAPES if args.quick else SHAPES
    if args.shapes is None:
        args.shapes = list(defaults)
    else:
        shapes = []
        for item in args.shapes.split(","):
            item = item.strip()
            try:
                shapes.append(defaults[int(item)] if item.isdigit() else
                              tuple(int(v) for v in item.lower().split("x")))
            except (ValueError, IndexError):
                p.error(f"--shapes: {item!r} is neither TxBxIxH nor an index < {len(defaults)}")
            if len(shapes[-1]) != 4 or min(shapes[-1]) < 1:
                p.error(f"--shapes: {item!r} must be four positive sizes TxBxIxH")
        args.shapes = shapes
    if args.threads < 1:
        p.error("--threads must be >= 1")
    args.repetitions = args.repetitions or (3 if args.quick else 5)
    if args.repetitions < 2:
        p.error("--repetitions must be >= 2 (the medians are google_benchmark's aggregates)")
    args.min_time = args.min_time if args.min_time is not None else (0.01 if args.quick else 0.3)
    args.warmup = args.warmup if args.warmup is not None else (0.02 if args.quick else 0.2)
    if args.csv is None and csv_dir:
        args.csv = os.path.join(csv_dir, "bench_rnn_quick.csv" if args.quick else "bench_rnn.csv")
    return args


# ----------------------------------------------------------------------------- machine

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gemm_peak_gflops(np, dtype="float32") -> float:
    """Best GEMM rate of NumPy's BLAS in `dtype` over 7 runs (2048^3, the thread count set for
    the run): the machine's attainable sgemm/dgemm peak, so the best run, not the median, on a
    shared machine."""
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.dtype(dtype).type)
    b = a.T.copy()
    a @ b
    best_ms, _ = best_time_ms(lambda: a @ b, 0.0, min_runs=7, max_runs=7)
    return 2 * n ** 3 / (best_ms * 1e-3) / 1e9


def gemm_floor_fn(np, cell, shape, mode, dtype):
    """A zero-argument function that performs exactly the matrix products of one `cell` call in
    `mode` at `shape` (T, B, I, H), with the same operand shapes and dtype, through NumPy's
    matmul into preallocated outputs (nothing else is timed), and its flop count.

    inference: XW = (T*B, I) @ (I, G*H), then T recurrent products (B, H) @ (H, G*H);
    train adds T products dA_t @ Wh^T = (B, G*H) @ (G*H, H) and dx = (T*B, G*H) @ (G*H, I),
    dWx = (I, T*B) @ (T*B, G*H), dWh = (H, T*B) @ (T*B, G*H) (transposes are views: the BLAS
    call transposes, as rnnkit's does). Outputs are never read back as operands except the
    gate buffer, which every run rewrites with the same values, so the values stay bounded."""
    T, B, I, H = shape
    GH = get_cell(cell).num_gates * H
    dt = np.dtype(dtype).type
    rng = np.random.default_rng(2)
    k = 1.0 / np.sqrt(H)
    x = rng.standard_normal((T * B, I), dtype=dt)
    hs = rng.standard_normal((T, B, H), dtype=dt)
    Wx = (rng.random((I, GH), dtype=dt) - 0.5) * dt(2 * k)
    Wh = (rng.random((H, GH), dtype=dt) - 0.5) * dt(2 * k)
    gates = np.empty((T * B, GH), dt)  # XW, the recurrent products' outputs, then dA
    g3 = gates.reshape(T, B, GH)
    calls = [(x, Wx, gates)] + [(hs[t], Wh, g3[t]) for t in range(T)]
    flops = 2.0 * T * B * (I + H) * GH
    if mode == "train":
        dh = np.empty((B, H), dt)
        dx, dWx, dWh = np.empty((T * B, I), dt), np.empty((I, GH), dt), np.empty((H, GH), dt)
        calls += [(g3[t], Wh.T, dh) for t in range(T - 1, -1, -1)]
        calls += [(gates, Wx.T, dx), (x.T, gates, dWx), (hs.reshape(T * B, H).T, gates, dWh)]
        flops *= 3  # backward: 2 * T*B*G*H*(H + I) for dh, dx plus the same for dWh, dWx

    def fn(calls=calls, matmul=np.matmul):
        for a, b, out in calls:
            matmul(a, b, out=out)

    return fn, flops


def gemm_floors(np, args):
    """{(cell, shape string, mode, dtype): (best ms, runs)} of gemm_floor_fn for the grid,
    one at a time (the large shapes' operands are freed before the next)."""
    floors = {}
    for cell in args.cells:
        for shape in args.shapes:
            for dtype in args.dtypes:
                for mode in args.modes:
                    fn, _ = gemm_floor_fn(np, cell, shape, mode, dtype)
                    floors[(cell, shape_str(shape), mode, dtype)] = best_time_ms(fn, args.min_time)
                    del fn
    return floors


def best_time_ms(fn, min_time, min_runs=3, max_runs=25):
    """Best (minimum) wall time of fn in ms over at least `min_runs` runs, more (up to
    `max_runs`) while the runs so far took less than `min_time` seconds. The first, cold run
    counts too: it only ever loses the minimum."""
    times, t_start = [], time.perf_counter()
    while len(times) < min_runs or (len(times) < max_runs and time.perf_counter() - t_start < min_time):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times), len(times)


# ----------------------------------------------------------------------------- cases

class Case:
    """One benchmark: a zero-argument callable plus the keys that place it in the tables."""

    def __init__(self, suite, cell, shape, mode, impl, fn, flops=0.0, dtype="float32"):
        self.suite, self.cell, self.shape, self.mode, self.impl = suite, cell, shape, mode, impl
        self.fn, self.flops, self.dtype = fn, flops, dtype
        self.note = ""
        self.est = None  # seconds of an earlier call (lower bound of a call) or None (register)
        self.gemm_ms = None  # GEMM floor of the same cell x shape x mode x dtype (recurrent)

    @property
    def name(self):
        return (f"{self.suite}/{self.cell}/{self.shape}/{self.dtype}/{self.mode}/{self.impl}"
                .replace(" ", "_"))


def shape_str(shape):
    return "x".join(str(s) for s in shape)


def onnxruntime_inference(np, cell, shape, params, threads):
    """A callable running the rnnkit.nn layer with ``params`` (Wx, Wh, b, bh; float32) through
    ONNX Runtime on time-major x, or None when onnx/onnxruntime are not installed."""
    try:
        import onnx  # noqa: F401 (to_onnx needs it)
        import onnxruntime as ort
    except ImportError:
        return None
    from .interop import to_onnx
    from .nn.recurrent import recurrent_layer

    T, B, I, H = shape
    layer = recurrent_layer(cell)(I, H, batch_first=False, dtype=np.float32)
    layer.load_state_dict({f"l0.fwd.{name}": value for name, value in params.items()})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(to_onnx(layer).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    lengths = np.full(B, T, dtype=np.int64)
    return lambda x: session.run(["y"], {"x": x, "lengths": lengths})[0]


def recurrent_cases(args, np, F, ref, torch):
    cases = []
    rng = np.random.default_rng(0)
    for cell in args.cells:
        cell_type = get_cell(cell)
        G = cell_type.num_gates
        for shape in args.shapes:
            T, B, I, H = shape
            k = 1.0 / np.sqrt(H)  # torch's default init range
            # Drawn in float64 once; each dtype gets these values (float32: rounded), so both
            # dtypes time the same problem.
            data = dict(Wx=rng.uniform(-k, k, (I, G * H)), Wh=rng.uniform(-k, k, (H, G * H)),
                        b=rng.uniform(-k, k, G * H), bh=rng.uniform(-k, k, G * H),
                        x=rng.standard_normal((T, B, I)), dy=rng.standard_normal((T, B, H)))
            gemm_flops = 2.0 * T * B * (I + H) * G * H  # forward GEMMs; backward does twice that
            fwd = {"rnnkit": cell_type.forward, "numpy": cell_type.reference_forward}
            bwd = {"rnnkit": cell_type.backward, "numpy": cell_type.reference_backward}
            states = grad_states = (None,) * len(cell_type.state_names)
            for dtype in args.dtypes:
                Wx, Wh, b, bh, x, dy = (data[n].astype(dtype) for n in ("Wx", "Wh", "b", "bh", "x", "dy"))
                outputs, group = {}, []
                for impl in args.impls:
                    if impl == "onnxruntime":
                        run = None if dtype != "float32" else onnxruntime_inference(
                            np, cell, shape, dict(Wx=Wx, Wh=Wh, b=b, bh=bh), args.threads)
                        if run is None:
                            continue

                        def o_inf(run=run, x=x):
                            return run(x)

                        t0 = time.perf_counter()
                        outputs["onnxruntime"] = o_inf()
                        impl_fns = {"inference": o_inf}  # ONNX Runtime does not train
                    elif impl == "torch":
                        if torch is None:
                            continue
                        module = getattr(torch.nn, cell_type.torch_module)(I, H)
                        if dtype == "float64":
                            module = module.double()
                        with torch.no_grad():
                            module.weight_ih_l0.copy_(torch.from_numpy(Wx.T.copy()))
                            module.weight_hh_l0.copy_(torch.from_numpy(Wh.T.copy()))
                            module.bias_ih_l0.copy_(torch.from_numpy(b))
                            module.bias_hh_l0.copy_(torch.from_numpy(bh))
                        xt = torch.from_numpy(x)
                        xg = torch.from_numpy(x.copy()).requires_grad_(True)
                        gt = torch.from_numpy(dy)

                        def t_inf(module=module, xt=xt):
                            with torch.no_grad():
                                return module(xt)[0]

                        def t_train(module=module, xg=xg, gt=gt):
                            module.zero_grad(set_to_none=True)
                            xg.grad = None
                            y = module(xg)[0]
                            (y * gt).sum().backward()
                            return y

                        t0 = time.perf_counter()
                        outputs["torch"] = t_inf().numpy()
                        impl_fns = {"inference": t_inf, "train": t_train}
                    else:
                        f, g = fwd[impl], bwd[impl]
                        extra = {"inference": True} if impl == "rnnkit" else {}

                        args_ = (x, *states, Wx, Wh, b, bh)

                        def n_inf(f=f, extra=extra, args_=args_):
                            return f(*args_, **extra)

                        def n_train(f=f, g=g, args_=args_, dy=dy, grad_states=grad_states):
                            out = f(*args_)
                            return g(dy, *grad_states, out[-1])

                        t0 = time.perf_counter()
                        outputs[impl] = n_inf()[0]
                        impl_fns = {"inference": n_inf, "train": n_train}
                    parity_s = time.perf_counter() - t0
                    for mode in (m for m in args.modes if m in impl_fns):
                        flops = gemm_flops * (3 if mode == "train" else 1)
                        case = Case("recurrent", cell, shape_str(shape), mode, impl, impl_fns[mode],
                                    flops, dtype)
                        # the parity call's time: inference's cost, and a lower bound for
                        # train's (a forward and its backward)
                        case.est = parity_s
                        group.append(case)
                cases += group
                # Parity against rnnkit, tolerance per dtype (PARITY_TOL explains the values).
                base, tol = outputs.get("rnnkit"), PARITY_TOL[dtype]
                for impl, y in outputs.items():
                    if base is not None and impl != "rnnkit":
                        err = float(np.max(np.abs(np.asarray(y, dtype=np.float64) - base)))
                        if not err <= tol:
                            for c in group:
                                if c.impl == impl:
                                    c.note = f"MISMATCH vs rnnkit: max |dy| = {err:.2e} (tolerance {tol:g})"
                            print(f"WARNING: {cell} {shape} {dtype} {impl} differs from rnnkit by "
                                  f"{err:.2e} (tolerance {tol:g})", file=sys.stderr)
    return cases


def dropin_cases(args, np, R, P):
    size = QUICK_DROPIN_SIZE if args.quick else DROPIN_SIZE
    N, T, D, H, V = size["N"], size["T"], size["D"], size["H"], size["V"]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, D))
    h0 = rng.standard_normal((N, H))
    dh = rng.standard_normal((N, T, H))
    xs, hs, cs, dhs = x[:, 0].copy(), h0, rng.standard_normal((N, H)), dh[:, 0].copy()
    ids = rng.integers(0, V, size=(N, T))
    Wemb = rng.standard_normal((V, D))
    demb = rng.standard_normal((N, T, D))
    w_aff = rng.standard_normal((H, V)) / np.sqrt(H)
    b_aff = rng.standard_normal(V)
    h_aff = rng.standard_normal((N, T, H))
    scores = rng.standard_normal((N, T, V))
    dscores = rng.standard_normal((N, T, V))
    mask = rng.random((N, T)) < 0.8
    seq = f"N{N} T{T} D{D} H{H}"
    cases = []
    mismatches = {}
    for impl, mod in (("rnnkit", R), ("numpy", P)):
        fns = {}
        for cell in CELLS:
            cell_type = get_cell(cell)
            G = cell_type.num_gates
            Wx = rng.standard_normal((D, G * H)) / np.sqrt(D)
            Wh = rng.standard_normal((H, G * H)) / np.sqrt(H)
            b = rng.standard_normal(G * H) * 0.5
            if impl == "rnnkit":  # same parameters for both implementations
                mismatches[cell] = (Wx, Wh, b)
            else:
                Wx, Wh, b = mismatches[cell]
            f, g = getattr(mod, cell + "_forward"), getattr(mod, cell + "_backward")
            sf, sg = getattr(mod, cell + "_step_forward"), getattr(mod, cell + "_step_backward")
            fns[(f"{cell}_forward", seq, "forward")] = lambda f=f, Wx=Wx, Wh=Wh, b=b: f(x, h0, Wx, Wh, b)[0]
            fns[(f"{cell}_forward/backward", seq, "forward+backward")] = (
                lambda f=f, g=g, Wx=Wx, Wh=Wh, b=b: g(dh, f(x, h0, Wx, Wh, b)[1])[0])
            st = f"N{N} D{D} H{H}"
            if cell_type.has_cell_state:
                fns[(f"{cell}_step_forward", st, "forward")] = (
                    lambda sf=sf, Wx=Wx, Wh=Wh, b=b: sf(xs, hs, cs, Wx, Wh, b)[0])
                fns[(f"{cell}_step_forward/backward", st, "forward+backward")] = (
                    lambda sf=sf, sg=sg, Wx=Wx, Wh=Wh, b=b: sg(dhs, dhs, sf(xs, hs, cs, Wx, Wh, b)[2])[0])
            else:
                fns[(f"{cell}_step_forward", st, "forward")] = (
                    lambda sf=sf, Wx=Wx, Wh=Wh, b=b: sf(xs, hs, Wx, Wh, b)[0])
                fns[(f"{cell}_step_forward/backward", st, "forward+backward")] = (
                    lambda sf=sf, sg=sg, Wx=Wx, Wh=Wh, b=b: sg(dhs, sf(xs, hs, Wx, Wh, b)[1])[0])
        emb_cache = mod.word_embedding_forward(ids, Wemb)[1]
        aff_cache = mod.temporal_affine_forward(h_aff, w_aff, b_aff)[1]
        fns[("word_embedding_forward", f"N{N} T{T} V{V} D{D}", "forward")] = (
            lambda mod=mod: mod.word_embedding_forward(ids, Wemb)[0])
        fns[("word_embedding_backward", f"N{N} T{T} V{V} D{D}", "backward")] = (
            lambda mod=mod, c=emb_cache: mod.word_embedding_backward(demb, c))
        fns[("temporal_affine_forward", f"N{N} T{T} D{H} M{V}", "forward")] = (
            lambda mod=mod: mod.temporal_affine_forward(h_aff, w_aff, b_aff)[0])
        fns[("temporal_affine_backward", f"N{N} T{T} D{H} M{V}", "backward")] = (
            lambda mod=mod, c=aff_cache: mod.temporal_affine_backward(dscores, c)[0])
        fns[("temporal_softmax_loss", f"N{N} T{T} V{V}", "loss+grad")] = (
            lambda mod=mod: mod.temporal_softmax_loss(scores, ids, mask)[1])
        for (name, shape, mode), fn in fns.items():
            cases.append(Case("dropin", name, shape, mode, impl, fn, dtype="float64"))
    # Parity (float64): the drop-ins agree with plain NumPy to ~1e-14; flag anything > 1e-9.
    by_key = {}
    for c in cases:
        by_key.setdefault((c.cell, c.mode), {})[c.impl] = c
    for key, pair in by_key.items():
        a, b = np.asarray(pair["rnnkit"].fn()), np.asarray(pair["numpy"].fn())
        err = float(np.max(np.abs(a - b))) if a.size else 0.0
        if not err <= 1e-9 * max(1.0, float(np.max(np.abs(b)))):
            pair["rnnkit"].note = f"MISMATCH vs numpy: {err:.2e}"
            print(f"WARNING: dropin {key} differs from numpy by {err:.2e}", file=sys.stderr)
    return cases


# ----------------------------------------------------------------------------- running

def register(gb, case, args):
    if case.est is not None and case.est >= max(SLOW_CALL_S, 2 * args.min_time):
        # Slow (the recurrent cases' parity call took >= 1 s: a train call takes longer still):
        # one call per repetition either way and 3 repetitions; no warm-up call, the median of 3
        # drops a cold first repetition. At the largest shape that saves a call of up to 15 s per
        # case.
        est = case.est
    else:
        t0 = time.perf_counter()
        case.fn()  # warm-up and the cost estimate that sets the iteration count
        est = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, int(round(args.min_time / est)))
    repetitions = args.repetitions if est < SLOW_CALL_S else max(3, args.repetitions - 2)
    case.iterations, case.repetitions = iterations, repetitions

    def bench(state, fn=case.fn):
        while state:
            fn()

    opts = gb.option.unit(gb.kMillisecond)(bench)
    opts = gb.option.use_real_time()(opts)
    opts = gb.option.iterations(iterations)(opts)
    opts = gb.option.repetitions(repetitions)(opts)
    opts = gb.option.report_aggregates_only(True)(opts)
    if args.warmup > 0 and est < args.warmup:
        opts = gb.option.min_warmup_time(args.warmup)(opts)
    gb.register(opts, name=case.name)


def run(gb, cases, args):
    fd, path = tempfile.mkstemp(suffix=".json", prefix="bench_rnn_")
    os.close(fd)
    argv = [sys.argv[0], f"--benchmark_out={path}", "--benchmark_out_format=json"]
    if args.interleave:
        argv.append("--benchmark_enable_random_interleaving=true")
    print(f"timing {len(cases)} benchmarks{' (randomly interleaved)' if args.interleave else ''}...",
          flush=True)
    if args.verbose:
        gb.main(argv)
    else:  # google_benchmark's own console report is raw (the tables follow): kept aside, and
        # shown only if the run fails
        with tempfile.TemporaryFile() as log:
            sys.stdout.flush()
            sys.stderr.flush()
            saved = [os.dup(1), os.dup(2)]
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                gb.main(argv)
            except BaseException:
                log.seek(0)
                os.write(saved[1], log.read())
                raise
            finally:
                for fd, copy in zip((1, 2), saved):
                    os.dup2(copy, fd)
                    os.close(copy)
    with open(path) as f:
        report = json.load(f)
    os.unlink(path)
    by_name = {c.name: c for c in cases}
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    for entry in report["benchmarks"]:
        # run_name carries the options as suffixes: "<name>/min_warmup_time:W/iterations:N/
        # repeats:R/real_time"; our names never contain ':'.
        base = "/".join(seg for seg in entry.get("run_name", "").split("/")
                        if ":" not in seg and seg != "real_time")
        case = by_name.get(base)
        if case is None or entry.get("run_type") != "aggregate":
            continue
        if entry.get("aggregate_name") not in ("mean", "median", "stddev"):
            continue
        value = entry["real_time"] * scale[entry.get("time_unit", "ms")]
        setattr(case, entry["aggregate_name"] + "_ms", value)
    return report.get("context", {})


# ----------------------------------------------------------------------------- reporting

def fmt_ms(v):
    return "-" if v is None else (f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_ratio(a, b):
    return "-" if a is None or b is None or not b else f"{a / b:.2f}x"


def fmt_pct(gemm_ms, ms):
    return "-" if not gemm_ms or not ms else f"{100 * gemm_ms / ms:.0f}%"


RECURRENT_COLUMNS = ("cell", "T x B x I x H", "mode", "rnnkit ms", "numpy ms", "torch ms",
                     "onnxruntime ms", "numpy/rnnkit", "torch/rnnkit", "onnxruntime/rnnkit",
                     "GEMM ms", "rnnkit GFLOP/s", "% of GEMM rate", "% of FMA peak")


def recurrent_table(cases, dtype, fma_peak=None):
    """The markdown table of one dtype; ``fma_peak``: GFLOP/s of the FMA loop in that dtype."""
    groups = {}
    for c in cases:
        if c.suite == "recurrent" and c.dtype == dtype:
            groups.setdefault((c.cell, c.shape, c.mode), {})[c.impl] = c
    lines = ["| " + " | ".join(RECURRENT_COLUMNS) + " |",
             "|---|---|---|" + "---:|" * (len(RECURRENT_COLUMNS) - 3)]
    for (cell, shape, mode), impls in groups.items():
        ms = {k: getattr(v, "median_ms", None) for k, v in impls.items()}
        gemm_ms = next(iter(impls.values())).gemm_ms
        r = impls.get("rnnkit")
        rate, of_peak = "-", "-"
        if r is not None and ms.get("rnnkit"):
            gflops = r.flops / (ms["rnnkit"] * 1e-3) / 1e9
            rate = f"{gflops:.3g}"  # three digits: tiny quick shapes run well under 1 GFLOP/s
            of_peak = f"{100 * gflops / fma_peak:.0f}%" if fma_peak else "-"
        notes = "; ".join(f"{k}: {v.note}" for k, v in impls.items() if v.note)
        base = ms.get("rnnkit")
        cells = [cell, shape, mode, *(fmt_ms(ms.get(i)) for i in IMPLS),
                 *(fmt_ratio(ms.get(i), base) for i in IMPLS[1:]), fmt_ms(gemm_ms), rate,
                 fmt_pct(gemm_ms, base), of_peak + (" " + notes if notes else "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dropin_table(cases):
    groups = {}
    for c in cases:
        if c.suite == "dropin":
            groups.setdefault((c.cell, c.shape, c.mode), {})[c.impl] = c
    lines = ["| function | size | timed | rnnkit.dropin ms | numpy ms | numpy/rnnkit |",
             "|---|---|---|---:|---:|---:|"]
    for (name, shape, mode), impls in groups.items():
        ms = {k: getattr(v, "median_ms", None) for k, v in impls.items()}
        note = impls["rnnkit"].note
        lines.append(f"| {name} | {shape} | {mode} | {fmt_ms(ms.get('rnnkit'))} | "
                     f"{fmt_ms(ms.get('numpy'))} | {fmt_ratio(ms.get('numpy'), ms.get('rnnkit'))}"
                     f"{' ' + note if note else ''} |")
    return "\n".join(lines)


def write_csv(path, header, cases):
    """The header lines as comments, then one row per benchmark."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for line in header:
            f.write(f"# {line}\n")
        f.write("suite,cell,shape,dtype,mode,impl,median_ms,mean_ms,stddev_ms,iterations,repetitions,"
                "gemm_gflops,gemm_floor_ms,pct_of_gemm_rate,note\n")
        for c in cases:
            med = getattr(c, "median_ms", None)
            gf = c.flops / (med * 1e-3) / 1e9 if c.flops and med else ""
            f.write(",".join(str(v) for v in (
                c.suite, c.cell, c.shape, c.dtype, c.mode, c.impl,
                "" if med is None else f"{med:.6g}",
                f"{getattr(c, 'mean_ms', float('nan')):.6g}", f"{getattr(c, 'stddev_ms', float('nan')):.6g}",
                c.iterations, c.repetitions, f"{gf:.4g}" if gf != "" else "",
                "" if c.gemm_ms is None else f"{c.gemm_ms:.6g}",
                f"{100 * c.gemm_ms / med:.4g}" if c.gemm_ms and med else "",
                c.note.replace(",", ";"))) + "\n")


def main(argv=None, csv_dir=None, prog="rnnkit bench"):
    """csv_dir: where the CSV goes without --csv (None: no CSV unless asked for)."""
    args = parse_args(argv, csv_dir, prog)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before NumPy/torch load their BLAS
    # torch's OpenMP workers spin at barriers by default; on a machine shared with other work
    # (or with the other libraries' BLAS threads) that turned 0.3 ms LSTM calls into 60 ms.
    # Passive waiting is what a shared machine needs; an explicit setting is respected.
    if "e2e" not in args.suite:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np

    try:
        import google_benchmark as gb
    except ImportError:
        raise SystemExit('the benchmarks need google-benchmark: pip install google-benchmark (or ".[bench]" from the repository)') from None

    import rnnkit
    from rnnkit import dropin as R
    from rnnkit import functional as F
    from rnnkit import reference as ref
    from rnnkit import reference_dropin as P

    torch = None
    if "torch" in args.impls and ("recurrent" in args.suite or "e2e" in args.suite):
        try:
            import torch
        except ImportError:
            print("torch is not installed: skipping the torch.nn columns", file=sys.stderr)
    rnnkit.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)

    peak = gemm_peak_gflops(np, "float32")
    dpeak = gemm_peak_gflops(np, "float64") if "recurrent" in args.suite and "float64" in args.dtypes else None
    fma_peaks = {dtype: rnnkit._core.fma_peak_gflops(rnnkit.get_isa(), dtype)
                 for dtype in args.dtypes} if "recurrent" in args.suite else {}
    cases = []
    if "recurrent" in args.suite:
        cases += recurrent_cases(args, np, F, ref, torch)
        floors = gemm_floors(np, args)
        for c in cases:
            if c.suite == "recurrent":
                c.gemm_ms, c.gemm_runs = floors[(c.cell, c.shape, c.mode, c.dtype)]
    if "dropin" in args.suite:
        cases += dropin_cases(args, np, R, P)
    if "e2e" in args.suite:
        from .bench_e2e import e2e_cases

        cases += e2e_cases(args, torch, Case)
    for case in cases:
        register(gb, case, args)
    run(gb, cases, args)

    info = rnnkit.info()
    command = prog + " " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    header = [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}",
        f"threads: {args.threads} (rnnkit, torch, NumPy's BLAS); OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}",
        f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"isa: {rnnkit.get_isa()} (supported: {', '.join(rnnkit.supported_isas())})",
        f"blas: {info['blas']}",
        f"rnnkit: {info['version']}; numpy: {np.__version__}; "
        f"torch: {torch.__version__ if torch is not None else 'not installed'}; python: {platform.python_version()}",
        f"sgemm: {peak:.1f} GFLOP/s (best of 7, NumPy float32 2048^3, same threads, this run)",
        *([f"dgemm: {dpeak:.1f} GFLOP/s (best of 7, NumPy float64 2048^3, same threads, this run)"]
          if dpeak else []),
        *(["fma peak: " + ", ".join(f"{dtype} {gflops:.1f}" for dtype, gflops in fma_peaks.items())
           + f" GFLOP/s (register-only FMA loop, {rnnkit.get_isa()}, every thread at once, best "
             "of 5, this run); % of FMA peak = rnnkit GFLOP/s / that"] if fma_peaks else []),
        *(["GEMM floors: per cell x shape x mode x dtype, NumPy's matmul of exactly the cell's "
           "matrix products at its operand shapes and dtype, into preallocated outputs (inference: "
           "(T*B,I)@(I,G*H) + T x (B,H)@(H,G*H); train adds T x (B,G*H)@(G*H,H), dx, dWx, dWh); "
           f"best of >= 3 runs (more while under {args.min_time} s), same threads, timed in this "
           "process before the google_benchmark run; % of GEMM rate = GEMM ms / rnnkit ms"]
          if "recurrent" in args.suite else []),
        f"timing: google_benchmark {gb.__version__}, wall time, median of repetitions"
        f"{', randomly interleaved' if args.interleave else ''}, {args.warmup} s untimed warm-up each",
        f"command: {command}",
    ]
    if args.csv:
        write_csv(args.csv, header, cases)
    parts = ["\n".join(f"- {line}" for line in header)]
    if "recurrent" in args.suite:
        for dtype in args.dtypes:
            parts.append(f"Recurrent layers, {dtype} ({args.threads} threads), median ms per call; "
                         f"GEMM ms: NumPy's {dtype} GEMMs of the same call alone:\n\n"
                         + recurrent_table(cases, dtype, fma_peaks.get(dtype)))
    if "dropin" in args.suite:
        parts.append("Drop-in functions (float64), median ms per call:\n\n" + dropin_table(cases))
    if "e2e" in args.suite:
        from .bench_e2e import e2e_table

        parts.append(f"End to end: one training epoch, Trainer vs the same torch loop ({args.threads} "
                     "threads), tokens/s from the median epoch:\n\n" + e2e_table(cases))
    text = "\n\n".join(parts) + "\n"
    print("\n" + text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    if args.csv:
        print(f"CSV: {args.csv}")


if __name__ == "__main__":
    main()
