"""The `rnnkit` command: `rnnkit info` (build, SIMD, threads, BLAS, CUDA), `rnnkit demo` (trains a small
character-level language model and samples from it), `rnnkit check` (kernels vs the NumPy
reference, timed) and `rnnkit bench` (rnnkit vs NumPy vs torch.nn benchmarks)."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import rnnkit
from rnnkit.cells import cell_names


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
        ("BLAS threads", f"{info['blas_threads']} (rnnkit calls it in parallel from its own pool)"),
        ("numpy", np.__version__),
        ("CUDA", _cuda_line(info["cuda"])),
    ]
    for d in info["cuda"]["devices"]:
        lines.append((f"CUDA device {d['ordinal']}", f"{d['name']}, compute capability "
                      f"{d['compute_capability']}, {d['memory_bytes'] / 2**30:.1f} GiB"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key:<{width}}  {value}")
    return 0


def _cuda_line(cuda: dict) -> str:
    if not cuda["built"]:
        return ("not built (pip install . --config-settings=cmake.define.RNNKIT_CUDA=ON)"
                + (f": {cuda['error']}" if cuda["error"] else ""))
    b = cuda["build"]
    version = f"runtime {b['cuda_runtime'] // 1000}.{b['cuda_runtime'] % 1000 // 10}"
    seen = f"{cuda['device_count']} device(s)"
    if cuda["device_error"]:
        seen += f" ({cuda['device_error']})"
    return f"built ({version}, architectures {b['architectures']}); {seen}"


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def cmd_check(args) -> int:
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


def _default_corpus() -> tuple[str, str]:
    """Real English text that ships with every CPython: the pydoc help topics."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics)), "CPython's pydoc_data help topics"


def cmd_demo(args) -> int:
    """Trains a character-level language model: samples and validation perplexity before and
    after, against the unigram baseline."""
    from rnnkit.models import LanguageModel, char_vocabulary, lm_windows, unigram_perplexity
    from rnnkit.train import Trainer

    if args.plot:  # before training: a missing matplotlib should not cost the run
        from rnnkit.plot import _matplotlib

        try:
            _matplotlib()
        except ImportError as exc:
            print(f"ERROR: --plot: {exc}", file=sys.stderr)
            return 2
    if args.threads:
        rnnkit.set_num_threads(args.threads)
    if args.corpus:
        with open(args.corpus, encoding="utf-8", errors="replace") as f:
            text, name = f.read(), args.corpus
    else:
        text, name = _default_corpus()
    n_val = max(min(len(text) // 10, args.max_chars // 10), args.seq_len + 1)
    if len(text) < 2 * n_val + args.seq_len + 1:
        print(f"ERROR: the corpus is too short ({len(text)} characters); give at least "
              f"{2 * n_val + args.seq_len + 1}", file=sys.stderr)
        return 2
    train_text, val_text = text[:-n_val][:args.max_chars], text[-n_val:]
    vocab = char_vocabulary(train_text + val_text)
    train_ids = np.array(vocab.encode(list(train_text)))
    val_ids = np.array(vocab.encode(list(val_text)))
    X, Y = lm_windows(train_ids, args.seq_len)
    Xv, Yv = lm_windows(val_ids, args.seq_len)
    unigram = unigram_perplexity(train_ids, Yv, len(vocab))
    print(f"corpus: {name}: {len(train_text):,} training / {len(val_text):,} validation characters, "
          f"{len(vocab)} symbols")
    model = LanguageModel(len(vocab), embedding_dim=32, hidden_size=args.hidden, cell=args.cell,
                          vocab=vocab, level="char", seed=args.seed)
    print(f"model: {args.cell.upper()} character language model, hidden {args.hidden}, "
          f"{model.num_parameters():,} parameters; {rnnkit.get_num_threads()} threads, ISA {rnnkit.get_isa()}")
    trainer = Trainer(model, optimizer="adam", lr=args.lr, clip_norm=5.0, metrics=["perplexity"],
                      seed=args.seed, quiet=args.quiet)
    prompt = args.prompt

    def sample():
        return prompt + model.generate(prompt, args.sample_chars, temperature=0.7, seed=args.seed)

    before = trainer.evaluate((Xv, Yv), batch_size=64)["perplexity"]
    print(f"\nvalidation perplexity: unigram baseline {unigram:.2f}, untrained model {before:.2f}")
    print(f"sample before training:\n{sample()}\n")
    start = time.perf_counter()
    history = trainer.fit((X, Y), (Xv, Yv), epochs=args.epochs, batch_size=args.batch)
    took = time.perf_counter() - start
    after = history["val_perplexity"][-1] if args.epochs else before
    print(f"\nsample after training:\n{sample()}\n")
    print(f"validation perplexity: {before:.2f} -> {after:.2f} after {args.epochs} epochs "
          f"({took:.1f} s); unigram baseline {unigram:.2f}")
    if args.plot and history.epochs:
        history.plot(args.plot)
        print(f"training curves written to {args.plot}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="rnnkit", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("info", help="version, build flags, SIMD ISA, threads, BLAS and CUDA")
    demo = sub.add_parser("demo", help="train a small character-level language model and sample from it")
    demo.add_argument("--corpus", metavar="FILE", help="UTF-8 text file (default: CPython's pydoc topics)")
    demo.add_argument("--cell", choices=cell_names(), default="lstm")
    demo.add_argument("--epochs", type=int, default=2)
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--hidden", type=int, default=128)
    demo.add_argument("--seq-len", type=int, default=64)
    demo.add_argument("--batch", type=int, default=32)
    demo.add_argument("--lr", type=float, default=3e-3)
    demo.add_argument("--max-chars", type=int, default=300_000, help="training characters used")
    demo.add_argument("--sample-chars", type=int, default=200)
    demo.add_argument("--prompt", default="The ")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--plot", metavar="PATH", help="write the training curves as a PNG file "
                      '(needs matplotlib: pip install "matplotlib>=3.5", the plot extra)')
    demo.add_argument("--threads", type=int, default=0,
                      help="rnnkit threads (default 0: rnnkit's default, the usable cores)")
    check = sub.add_parser("check", help="LSTM forward+backward: checked against NumPy and timed")
    check.add_argument("--steps", type=int, default=50)
    check.add_argument("--batch", type=int, default=32)
    check.add_argument("--inputs", type=int, default=64)
    check.add_argument("--hidden", type=int, default=128)
    check.add_argument("--repeats", type=int, default=5)
    sub.add_parser("bench", add_help=False,
                   help="rnnkit vs plain NumPy vs torch.nn benchmarks (rnnkit bench --help)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options
        from rnnkit.bench import main as bench_main

        bench_main(argv[1:])
        return 0
    args = parser.parse_args(argv)
    if args.command is None:  # bare `rnnkit`: what it can do
        parser.print_help()
        return 0
    return {"info": cmd_info, "demo": cmd_demo, "check": cmd_check}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
