"""Training-mode memory: the reserve a forward keeps for backward (``cache.nbytes``) next to
the minimum activations BPTT needs without recomputation, per cell and shape (float32). Then
the memory held between calls: what the core's scratch arenas keep after one LSTM inference
call (``rnnkit.retained_memory()``), the process's resident memory (Linux: /proc/self/statm)
before the call, after it (its output freed) and after ``rnnkit.release_memory()``. Last,
what ``segment=k`` trades on a long sequence: the cache kept and the forward + backward time
(median of 5) with and without it.

Minimum per time step and batch row, H hidden units: RNN h (H); LSTM i, f, g, o, c (5H; h is
o * tanh(c)); GRU r, z, n, the reset term (h Wh_n + bh_n, or r * h_{t-1}) and h (5H).

    python bench/memory.py
"""
import os
import statistics
import time

import numpy as np

from checkout import use_checkout

use_checkout()

import rnnkit  # noqa: E402
from rnnkit import functional as F  # noqa: E402

SHAPES = [(50, 1, 128, 128), (50, 32, 128, 256), (100, 64, 256, 512), (35, 20, 650, 650),
          (100, 128, 1024, 1024)]
MINIMUM_PER_UNIT = {"rnn": 1, "lstm": 5, "gru": 5}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def reserve_bytes(cell, T, B, I, H):
    G = GATES[cell]
    x = np.zeros((T, B, I), np.float32)
    Wx, Wh, b = np.zeros((I, G * H), np.float32), np.zeros((H, G * H), np.float32), np.zeros(G * H, np.float32)
    if cell == "lstm":
        cache = F.lstm_forward(x, None, None, Wx, Wh, b)[-1]
    elif cell == "gru":
        cache = F.gru_forward(x, None, Wx, Wh, b)[-1]
    else:
        cache = F.rnn_forward(x, None, Wx, Wh, b)[-1]
    return cache.nbytes


def resident_mb() -> float:
    """The process's resident set in MB (Linux), else NaN."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def held_between_calls(T, B, I, H):
    """(arena MB after one LSTM inference call, resident MB before it, after it, after
    release_memory(), MB release_memory() reported freeing)."""
    x = np.ones((T, B, I), np.float32)
    Wx, Wh = np.full((I, 4 * H), 0.01, np.float32), np.full((H, 4 * H), 0.01, np.float32)
    b = np.zeros(4 * H, np.float32)
    rnnkit.release_memory()
    before = resident_mb()
    y = F.lstm_forward(x, None, None, Wx, Wh, b, inference=True)
    del y
    held, after = rnnkit.retained_memory() / 2**20, resident_mb()
    freed = rnnkit.release_memory() / 2**20
    return held, before, after, resident_mb(), freed


def segment_trade(T=1000, B=32, I=128, H=256, k=50):
    """(MB kept, seconds of forward + backward) of an LSTM without segments and with segment=k."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    Wx = (rng.standard_normal((I, 4 * H)) * 0.05).astype(np.float32)
    Wh = (rng.standard_normal((H, 4 * H)) * 0.05).astype(np.float32)
    b, dy = np.zeros(4 * H, np.float32), np.ones((T, B, H), np.float32)
    out = []
    for segment in (None, k):
        def call():
            *_, cache = F.lstm_forward(x, None, None, Wx, Wh, b, segment=segment)
            F.lstm_backward(dy, None, None, cache)
            return cache.nbytes
        kept = call()  # warm-up
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        out.append((kept / 2**20, statistics.median(times)))
    return out


def main():
    print("| cell | T x B x I x H | reserve MB | minimum MB | reserve / minimum |")
    print("|---|---|---:|---:|---:|")
    for cell in ("rnn", "lstm", "gru"):
        for T, B, I, H in SHAPES:
            got = reserve_bytes(cell, T, B, I, H)
            need = MINIMUM_PER_UNIT[cell] * T * B * H * 4
            print(f"| {cell} | {T}x{B}x{I}x{H} | {got / 2**20:.2f} | {need / 2**20:.2f} | {got / need:.2f} |")
    print()
    print("| LSTM inference T x B x I x H | arenas hold after the call MB | resident before / after "
          "the call / after release_memory() MB | release_memory() freed MB |")
    print("|---|---:|---|---:|")
    for T, B, I, H in SHAPES[2:]:
        held, before, after, released, freed = held_between_calls(T, B, I, H)
        print(f"| {T}x{B}x{I}x{H} | {held:.1f} | {before:.0f} / {after:.0f} / {released:.0f} | {freed:.1f} |")
    print()
    print("| LSTM 1000x32x128x256, float32 | cache kept MB | forward + backward s |")
    print("|---|---:|---:|")
    for label, (mb, seconds) in zip(("no segments", "segment=50"), segment_trade()):
        print(f"| {label} | {mb:.1f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
