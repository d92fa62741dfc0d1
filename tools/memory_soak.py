"""Resident memory over many forward/backward calls of varying shapes.

    PYTHONPATH=python python tools/memory_soak.py [--calls 10000] [--max-growth-mib 32]

Warms up (every thread's scratch arena reaches the size of the largest shape drawn), then runs
--calls forward/backward pairs with shapes, cells and options drawn at random, printing the
resident set size (VmRSS) every tenth of the run; exits 1 when it grew by more than
--max-growth-mib after warm-up (tests/test_memory.py runs it). Also prints what the scratch
arenas hold and what rnnkit.release_memory() gives back."""
from __future__ import annotations

import argparse
import gc
import sys
import time

import numpy as np

import rnnkit
from rnnkit import functional as F


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def one_call(rng) -> None:
    cell = ("rnn", "lstm", "gru")[rng.integers(3)]
    T, B, I, H = (int(v) for v in rng.integers(1, (12, 24, 24, 48)))
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    dtype = (np.float32, np.float64)[rng.integers(2)]
    x = rng.standard_normal((T, B, I)).astype(dtype)
    Wx = (0.2 * rng.standard_normal((I, G * H))).astype(dtype)
    Wh = (0.2 * rng.standard_normal((H, G * H))).astype(dtype)
    b = np.zeros(G * H, dtype)
    options = {"lengths": rng.integers(0, T + 1, B)} if rng.random() < 0.5 else {}
    if rng.random() < 0.2:
        options["segment"] = int(rng.integers(1, T + 1))
        options.pop("lengths", None)
    states = [None, None] if cell == "lstm" else [None]
    *outs, cache = getattr(F, f"{cell}_forward")(x, *states, Wx, Wh, b, **options)
    getattr(F, f"{cell}_backward")(np.ones_like(outs[0]), *([None] * len(states)), cache)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--max-growth-mib", type=float, default=32.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rnnkit.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(args.warmup):
        one_call(rng)
    gc.collect()
    base = rss_mib()
    print(f"after {args.warmup} warm-up calls: RSS {base:.1f} MiB, scratch arenas "
          f"{rnnkit.retained_memory() / 2**20:.2f} MiB")
    peak = base
    for i in range(1, args.calls + 1):
        one_call(rng)
        if i % max(1, args.calls // 10) == 0:
            now = rss_mib()
            peak = max(peak, now)
            print(f"call {i:6d}: RSS {now:.1f} MiB ({now - base:+.1f})")
    gc.collect()
    end = rss_mib()
    seconds = time.perf_counter() - start
    released = rnnkit.release_memory()
    print(f"{args.calls} calls in {seconds:.1f} s; RSS growth {end - base:+.1f} MiB (peak "
          f"{peak - base:+.1f}); release_memory() freed {released / 2**20:.2f} MiB, "
          f"RSS now {rss_mib():.1f} MiB; live forward handles {rnnkit._core._live_forward_handles()}")
    return 0 if end - base <= args.max_growth_mib else 1


if __name__ == "__main__":
    sys.exit(main())
