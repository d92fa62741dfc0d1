"""One recurrent-layer call repeated for a while, for a sampling profiler to attribute its time:

    perf record -g python bench/profile_layer.py lstm 35x20x650x650 inference [--seconds 10]
    perf report --no-children --sort dso,symbol

float32 through ``rnnkit.functional`` (inference: ``inference=True``; train: forward + backward),
the same inputs as ``rnnkit bench`` (T, B, I, H; both biases, h0 = 0), --threads threads
(default 2). Prints the median ms per call at the end, so a profile can be matched to a timing.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from checkout import use_checkout  # bench/ is the script's directory

use_checkout()
import rnnkit  # noqa: E402
from rnnkit import functional as F  # noqa: E402
from rnnkit.cells import get_cell  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cell", choices=["rnn", "lstm", "gru"])
    p.add_argument("shape", help="TxBxIxH, e.g. 35x20x650x650")
    p.add_argument("mode", choices=["inference", "train"])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    T, B, I, H = (int(v) for v in args.shape.split("x"))
    rnnkit.set_num_threads(args.threads)
    G = get_cell(args.cell).num_gates
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    Wx = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(np.float32)
    Wh = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(np.float32)
    b, bh = np.zeros(G * H, np.float32), np.zeros(G * H, np.float32)
    states = (np.zeros((B, H), np.float32),) * (2 if args.cell == "lstm" else 1)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    forward, backward = getattr(F, args.cell + "_forward"), getattr(F, args.cell + "_backward")

    def call():
        if args.mode == "inference":
            forward(x, *states, Wx, Wh, b, bh, inference=True)
        else:
            *_, cache = forward(x, *states, Wx, Wh, b, bh)
            backward(dy, *[None] * len(states), cache)

    call()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < args.seconds or len(times) < 3:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    print(f"{args.cell} {args.shape} {args.mode}: {1e3 * statistics.median(times):.3f} ms per call "
          f"(median of {len(times)}, {args.threads} threads, isa {rnnkit.get_isa()})")


if __name__ == "__main__":
    main()
