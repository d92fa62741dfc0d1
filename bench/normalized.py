"""What normalisation inside the recurrence costs: rnnkit.nn layers with norm="layer" and
norm="batch" timed against the same layer without normalisation, and (--numpy) against the
per-step NumPy recurrence of rnnkit.nn.normalized that the layers used before the fused
kernels had normalisation.

    python bench/normalized.py [--threads 2] [--repeats 5] [--numpy] [--quick]

Interleaved: each repeat times every row once (median of several calls after a warm-up), so
all rows see the same machine state; the table gives the median over the repeats and the
ratio to the un-normalised layer (norm / plain; 1.00 = free). float32, one direction, one
layer, time-major, training = forward + backward, inference = forward with training=False.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from checkout import use_checkout  # (bench/ is the script's directory)

use_checkout()
import rnnkit  # noqa: E402
from rnnkit import nn  # noqa: E402
from rnnkit.nn import normalized  # noqa: E402

from before_after import cpu_name  # noqa: E402  (bench/ is the script's directory)

SHAPES = [(50, 1, 128, 128), (50, 32, 128, 256), (35, 20, 650, 650), (100, 64, 256, 512)]
QUICK_SHAPES = [(5, 2, 8, 8)]
LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU}
NORMS = (None, "layer", "batch")


def seconds(fn):
    fn()  # warm-up: scratch arenas, the pool
    times, start = [], time.perf_counter()
    while len(times) < 3 or (len(times) < 15 and time.perf_counter() - start < 0.5):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def layer_call(cell, norm, mode, shape):
    T, B, I, H = shape
    layer = LAYERS[cell](I, H, norm=norm, batch_first=False, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    if mode == "inference":
        return lambda: layer.forward(x, training=False)

    def train():
        layer.forward(x, training=True)
        layer.backward(dy)
    return train


def numpy_call(cell, norm, mode, shape):
    """The per-step NumPy recurrence on the same layer's parameters."""
    T, B, I, H = shape
    layer = LAYERS[cell](I, H, norm=norm, batch_first=False, seed=0)
    d = layer.l0.fwd
    params = {**d.kernel_params(), **d._norm_gains()}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    training = mode == "train"

    def run():
        _, _, _, cache = normalized.normalized_forward(d.cell, x, None, None, params, norm, None,
                                                       False, None, training, d._buffers)
        if training:
            normalized.normalized_backward(cache, dy, None, None)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--numpy", action="store_true", help="also time the NumPy recurrence")
    parser.add_argument("--quick", action="store_true", help="one tiny shape (a smoke test)")
    args = parser.parse_args()
    rnnkit.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    rows = {}
    for cell in LAYERS:
        for shape in shapes:
            for mode in ("inference", "train"):
                for norm in NORMS:
                    rows[(cell, shape, mode, norm, "core")] = layer_call(cell, norm, mode, shape)
                    if args.numpy and norm is not None:
                        rows[(cell, shape, mode, norm, "numpy")] = numpy_call(cell, norm, mode, shape)
    times = {key: [] for key in rows}
    for _ in range(args.repeats):
        for key, fn in rows.items():
            times[key].append(seconds(fn))
    print(f"# {cpu_name()}, ISA {rnnkit.get_isa()}, "
          f"{args.threads} threads, float32, median of {args.repeats} interleaved repeats")
    print("| cell | shape (T,B,I,H) | mode | plain ms | layer ms (x plain) | batch ms (x plain) |"
          + (" NumPy layer ms | NumPy batch ms |" if args.numpy else ""))
    print("|---|---|---|---|---|---|" + ("---|---|" if args.numpy else ""))
    for cell in LAYERS:
        for shape in shapes:
            for mode in ("inference", "train"):
                med = {norm: statistics.median(times[(cell, shape, mode, norm, "core")]) for norm in NORMS}
                line = (f"| {cell} | {'x'.join(map(str, shape))} | {mode} | {med[None] * 1e3:.3f} | "
                        f"{med['layer'] * 1e3:.3f} ({med['layer'] / med[None]:.2f}x) | "
                        f"{med['batch'] * 1e3:.3f} ({med['batch'] / med[None]:.2f}x) |")
                if args.numpy:
                    line += "".join(f" {statistics.median(times[(cell, shape, mode, n, 'numpy')]) * 1e3:.2f} |"
                                    for n in ("layer", "batch"))
                print(line)


if __name__ == "__main__":
    main()
