"""Two builds of rnnkit timed against each other, interleaved: has a change made the kernels slower?

    python bench/before_after.py BEFORE AFTER [--repeats 5] [--threads 2] [--quick]
                                 [--shapes TxBxIxH,...] [--cells rnn,lstm,gru]

BEFORE and AFTER are directories that hold an importable ``rnnkit`` package with its compiled
``_core`` (e.g. ``python`` of two checkouts, each built in place). Each repeat runs one child
process per build, alternating before / after, so both see the same machine state; a child
times every row once (the median of several calls after a warm-up call) through
``rnnkit.functional``'s public API, which both builds share. The table gives the median over
the repeats of each build and after/before (< 1: the change is faster), and the noise: the
largest relative spread (max - min) / median over the repeats of either build. float32, the
shapes of ``rnnkit bench`` (T, B, I, H), the vanilla RNN (tanh), LSTM and GRU, inference
(forward with inference=True) and training (forward + backward).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

SHAPES = [(50, 1, 128, 128), (50, 32, 128, 256), (100, 64, 256, 512), (35, 20, 650, 650),
          (100, 128, 1024, 1024)]
QUICK_SHAPES = [(5, 2, 8, 8)]
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}  # name -> gates
MODES = ("inference", "train")

# Runs in a child process with the build under test first on sys.path; prints one JSON object:
# row key -> median seconds per call, plus the ISA the build chose.
CHILD = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import rnnkit
from rnnkit import functional as F

threads, shapes, cells = int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
rnnkit.set_num_threads(threads)

def call(cell, mode, a):
    states = (a["h0"], a["c0"]) if cell == "lstm" else (a["h0"],)
    forward, backward = getattr(F, cell + "_forward"), getattr(F, cell + "_backward")
    if mode == "inference":
        return lambda: forward(a["x"], *states, a["Wx"], a["Wh"], a["b"], a["bh"], inference=True)
    def train():
        *outs, cache = forward(a["x"], *states, a["Wx"], a["Wh"], a["b"], a["bh"])
        backward(a["dy"], *[None] * len(states), cache)
    return train

def seconds(fn):
    fn()  # warm-up: scratch arenas, packing buffers, the pool
    times, start = [], time.perf_counter()
    while len(times) < 3 or (len(times) < 25 and time.perf_counter() - start < 1.0):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]

rng = np.random.default_rng(0)
result = {"isa": rnnkit.get_isa()}
for T, B, I, H in shapes:
    for cell, G in cells.items():
        a = {"x": rng.standard_normal((T, B, I)), "h0": rng.standard_normal((B, H)) * 0.5,
             "c0": rng.standard_normal((B, H)) * 0.5, "Wx": rng.standard_normal((I, G * H)) / I ** 0.5,
             "Wh": rng.standard_normal((H, G * H)) / H ** 0.5, "b": np.zeros(G * H),
             "bh": np.zeros(G * H), "dy": rng.standard_normal((T, B, H))}
        a = {k: v.astype(np.float32) for k, v in a.items()}
        for mode in ("inference", "train"):
            result[f"{cell} {T}x{B}x{I}x{H} {mode}"] = seconds(call(cell, mode, a))
print(json.dumps(result))
"""


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def run_child(path, threads, shapes, cells):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", CHILD, os.path.abspath(path), str(threads),
                          json.dumps(shapes), json.dumps(cells)],
                         env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="directory holding the 'before' build's rnnkit package")
    parser.add_argument("after", help="directory holding the 'after' build's rnnkit package")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one tiny shape (a smoke test)")
    parser.add_argument("--shapes", help="TxBxIxH,... instead of the grid (a targeted recheck)")
    parser.add_argument("--cells", help=f"a subset of {','.join(CELLS)}")
    args = parser.parse_args(argv)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.shapes:
        shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]
    cells = CELLS if not args.cells else {c: CELLS[c] for c in args.cells.split(",")}
    runs = {"before": [], "after": []}
    for _ in range(args.repeats):
        for build in ("before", "after"):
            runs[build].append(run_child(getattr(args, build), args.threads, shapes, cells))
    isas = {build: {r.pop("isa") for r in results} for build, results in runs.items()}
    print(f"# {cpu_name()}, ISA before {isas['before']} "
          f"after {isas['after']}, {args.threads} threads, float32, {args.repeats} interleaved "
          f"repeats")
    print("| cell | shape (T,B,I,H) | mode | before ms | after ms | after/before | noise |")
    print("|---|---|---|---|---|---|---|")
    for key in runs["before"][0]:
        per_build = {build: [r[key] for r in results] for build, results in runs.items()}
        medians = {build: statistics.median(v) for build, v in per_build.items()}
        noise = max((max(v) - min(v)) / statistics.median(v) for v in per_build.values())
        cell, shape, mode = key.split()
        print(f"| {cell} | {shape} | {mode} | {medians['before'] * 1e3:.3f} | "
              f"{medians['after'] * 1e3:.3f} | {medians['after'] / medians['before']:.3f} | "
              f"{noise:.0%} |")


if __name__ == "__main__":
    main()
