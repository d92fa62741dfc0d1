"""Times the CUDA backend against rnnkit's CPU backend and torch's cuDNN RNNs (when torch sees
the GPU), LSTM and GRU, float32, forward (inference) and forward+backward (training).
Run by tests/gpu/device_check.sh on a machine with a GPU; writes a CSV.

    PYTHONPATH=python python tests/gpu/bench_cuda.py --out timing.csv [--quick]

Times are medians of --repeats runs after one warm-up; GPU runs are bracketed by device
synchronisation. The CPU backend is skipped at the largest shape (minutes per run)."""
from __future__ import annotations

import argparse
import csv
import sys
import time

import numpy as np

import rnnkit
from rnnkit import functional as F

# (T, B, I, H): the benchmark grid's kind of shapes plus a large one
SHAPES = [(35, 20, 650, 650), (100, 64, 256, 512), (100, 256, 1024, 1024)]
CPU_LIMIT = 64 * 512 * 512 * 100  # B*I*H*T above which the CPU backend is not timed


def median_time(fn, repeats, sync):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def rnnkit_runs(cell, T, B, I, H, xp):
    G = {"lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(0)
    x = xp.asarray(rng.standard_normal((T, B, I), dtype=np.float32))
    Wx = xp.asarray((rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(np.float32))
    Wh = xp.asarray((rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(np.float32))
    b = xp.asarray(np.zeros(G * H, np.float32))
    dy = xp.asarray(rng.standard_normal((T, B, H), dtype=np.float32))
    if cell == "lstm":
        def fwd():
            return F.lstm_forward(x, None, None, Wx, Wh, b, inference=True)

        def train():
            *_, cache = F.lstm_forward(x, None, None, Wx, Wh, b)
            return F.lstm_backward(dy, None, None, cache)
    else:
        def fwd():
            return F.gru_forward(x, None, Wx, Wh, b, inference=True)

        def train():
            *_, cache = F.gru_forward(x, None, Wx, Wh, b)
            return F.gru_backward(dy, None, cache)
    return fwd, train


def torch_runs(cell, T, B, I, H):
    import torch

    layer = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H).cuda()
    x = torch.randn(T, B, I, device="cuda")
    xg = x.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            return layer(x)

    def train():
        y, _ = layer(xg)
        y.sum().backward()

    return fwd, train, torch.cuda.synchronize


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="the first shape only, 2 repeats")
    args = p.parse_args(argv)
    import cupy as cp

    shapes = SHAPES[:1] if args.quick else SHAPES
    repeats = 2 if args.quick else args.repeats
    try:
        import torch

        has_torch = torch.cuda.is_available()
    except ImportError:
        has_torch = False
    gpu_sync = cp.cuda.Device().synchronize
    # without OpenBLAS (scipy-openblas32 missing) the CPU backend's big GEMMs use the slow
    # fallback: its times would be no baseline, so it is not timed then
    blas = rnnkit.info()["blas"]
    time_cpu = not blas.startswith("builtin")
    if not time_cpu:
        print(f"CPU backend not timed: BLAS is {blas!r} (carry the scipy-openblas32 wheel)")
    rows = []
    for cell in ("lstm", "gru"):
        for T, B, I, H in shapes:
            row = dict(cell=cell, T=T, B=B, I=I, H=H, dtype="float32")
            f, t = rnnkit_runs(cell, T, B, I, H, cp)
            row["cuda_fwd_ms"] = 1e3 * median_time(f, repeats, gpu_sync)
            row["cuda_train_ms"] = 1e3 * median_time(t, repeats, gpu_sync)
            if time_cpu and B * I * H * T <= CPU_LIMIT:
                f, t = rnnkit_runs(cell, T, B, I, H, np)
                row["cpu_fwd_ms"] = 1e3 * median_time(f, max(2, repeats // 2), lambda: None)
                row["cpu_train_ms"] = 1e3 * median_time(t, max(2, repeats // 2), lambda: None)
            if has_torch:
                f, t, sync = torch_runs(cell, T, B, I, H)
                row["cudnn_fwd_ms"] = 1e3 * median_time(f, repeats, sync)
                row["cudnn_train_ms"] = 1e3 * median_time(t, repeats, sync)
            rows.append(row)
            print(", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in row.items()), flush=True)
    fields = ["cell", "T", "B", "I", "H", "dtype", "cuda_fwd_ms", "cuda_train_ms", "cpu_fwd_ms",
              "cpu_train_ms", "cudnn_fwd_ms", "cudnn_train_ms"]
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    info = rnnkit.info()
    print(f"rnnkit CPU: {info['threads']} threads, ISA {info['isa_active']}, BLAS {info['blas']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
