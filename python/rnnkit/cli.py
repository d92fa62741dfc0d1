"""The `rnnkit` command: `rnnkit info` (build, SIMD, threads, BLAS) and `rnnkit demo`."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import rnnkit


def cmd_info(args) -> int:
    info = rnnkit.info()
    build = info["build"]
    lines = [
        ("rnnkit", info["version"]),
        ("build", f"{build['build_type']}, compiler {build['compiler']}, SIMD mode {build['simd_mode']}"),
        ("ISA supported", ", ".join(info["isa_supported"])),
        ("ISA active", info["isa_active"] + (f" (RNNKIT_ISA={info['isa_env_override']})" if info["isa_env_override"] else "")),
        ("threads", str(info["threads"])),
        ("BLAS", info["blas"]),
        ("BLAS kernel", info["blas_core"] or "-"),
        ("BLAS threads", str(info["blas_threads"])),
        ("numpy", np.__version__),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cmd_demo(args) -> int:
    """A small LSTM forward + backward: checks the kernels against the NumPy reference on the
    spot and reports the speed-up, so a fresh install shows it works and what it buys."""
    from rnnkit import functional as F
    from rnnkit import reference as R

    T, B, I, H = args.steps, args.batch, args.inputs, args.hidden
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I))
    Wx = rng.standard_normal((I, 4 * H)) / np.sqrt(I)
    Wh = rng.standard_normal((H, 4 * H)) / np.sqrt(H)
    b = np.zeros(4 * H)
    dy = rng.standard_normal((T, B, H))
    print(f"LSTM, T={T} B={B} I={I} H={H}, float64, {rnnkit.get_num_threads()} threads, ISA {rnnkit.get_isa()}")

    def run(mod):
        y, hT, cT, cache = mod.lstm_forward(x, None, None, Wx, Wh, b)
        return y, mod.lstm_backward(dy, None, None, cache)

    y_fast, g_fast = run(F)
    y_ref, g_ref = run(R)
    err = max(np.abs(y_fast - y_ref).max(), max(np.abs(a - r).max() for a, r in zip(g_fast, g_ref) if a is not None))
    print(f"max |rnnkit - numpy reference| over outputs and gradients: {err:.2e}")
    t_fast = _median_time(lambda: run(F), args.repeats)
    t_ref = _median_time(lambda: run(R), args.repeats)
    print(f"forward+backward: rnnkit {t_fast * 1e3:.2f} ms, numpy {t_ref * 1e3:.2f} ms "
          f"(median of {args.repeats}): {t_ref / t_fast:.1f}x faster")
    if err > 1e-9:
        print("ERROR: rnnkit disagrees with the reference", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rnnkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, build flags, SIMD ISA, threads and BLAS")
    demo = sub.add_parser("demo", help="LSTM forward+backward: checked against NumPy and timed")
    demo.add_argument("--steps", type=int, default=50)
    demo.add_argument("--batch", type=int, default=32)
    demo.add_argument("--inputs", type=int, default=64)
    demo.add_argument("--hidden", type=int, default=128)
    demo.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    return {"info": cmd_info, "demo": cmd_demo}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
