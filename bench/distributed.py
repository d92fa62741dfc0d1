"""Data-parallel training on one machine, and a model of communication against compute that
projects the speed-up to more machines. Every number docs/distributed.md reports comes from
this script's output.

    python bench/distributed.py [--tokens 100000] [--bandwidth-gbit 10 1] [--quick]

1. Time per epoch of a PTB-sized LSTM language model (10,000-word vocabulary, embedding 200,
   2 LSTM layers of 200, 35 steps, global batch 32; about 4.6 million float32 parameters), on
   a synthetic corpus (below), trained as 1 process x 2 threads and as 2 MPI ranks x 1 thread
   (global batch 32 both times), and the validation perplexity each reaches after one epoch
   (the same training, so the same perplexity up to float32 rounding).
2. The time of one Allreduce (sum, float32, 2 ranks of this machine) at several sizes, and
   the time the training step spent in its gradient Allreduce (including waiting for the
   slower rank).
3. The model: per step, one machine computes for t_c (the 1-process step time) and the ring
   Allreduce of S bytes over P machines takes 2 (P - 1) / P * S / B + 2 (P - 1) * latency on a
   network of bandwidth B. Each machine keeps its batch (weak scaling), so P machines process
   P batches in t_c + t_allreduce: speed-up P * t_c / (t_c + t_allreduce), printed for P = 4
   ... 64 at the bandwidths given.

The corpus: token ids drawn from a Zipf distribution (exponent 1.1) over the 10,000 words, with
every other token a fixed function of the one before, so there is something to learn. PTB's
training text has 929,589 tokens; ``--tokens`` sets this one's size (default 100,000, so one
epoch takes tens of seconds here), and validation uses a tenth of it. No download.

The ranks are started with tests/mpi_launcher.py (the flags a root user on a small test machine
needs).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from checkout import use_checkout  # noqa: E402

use_checkout()

MODEL = dict(embedding_dim=200, hidden_size=200, num_layers=2)
SEQ_LEN, GLOBAL_BATCH = 35, 32
SIZES = [2 ** k for k in range(10, 27, 2)]  # 1 KiB ... 64 MiB
MACHINES = [4, 8, 16, 32, 64]
LATENCY = 20e-6  # seconds per message on the network of the projection


def corpus(vocab: int, tokens: int, seed: int = 0):
    """The synthetic corpus: Zipf(1.1) ids over ``vocab`` words (0 is padding), every second
    one a function of the one before; ``seed`` draws the text, the function is always the same
    (so training and validation text are of one language)."""
    ranks = np.arange(1, vocab)
    follow = np.random.default_rng(12345).permutation(ranks)
    p = ranks ** -1.1
    ids = np.random.default_rng(seed).choice(ranks, size=tokens, p=p / p.sum())
    ids[1::2] = follow[ids[0::2][:len(ids[1::2])] - 1]
    return ids


def result(kind: str, **values) -> None:
    print("RESULT " + json.dumps(dict(kind=kind, **values)), flush=True)


def train(args) -> None:
    """One epoch on this process (or on every rank of mpiexec with --distributed)."""
    import rnnkit
    from rnnkit.models import LanguageModel, lm_windows, unigram_perplexity
    from rnnkit.train import Trainer

    rnnkit.set_num_threads(args.threads)
    dist = None
    if args.distributed:
        from rnnkit.distributed import Group

        dist = Group()
    size = 1 if dist is None else dist.size
    X, Y = lm_windows(corpus(args.vocab, args.tokens), SEQ_LEN)
    Xv, Yv = lm_windows(corpus(args.vocab, args.tokens // 10, seed=1), SEQ_LEN)
    model = LanguageModel(args.vocab, **MODEL, level="word", seed=0)
    trainer = Trainer(model, optimizer="adam", lr=2e-3, clip_norm=5.0, metrics=["perplexity"], quiet=True,
                      seed=0, distributed=dist)
    in_allreduce = [0.0, 0]
    if dist is not None:  # the time each step waits in its gradient Allreduce
        reduce = dist.average_gradients

        def timed(grads, sums):
            start = time.perf_counter()
            out = reduce(grads, sums)
            in_allreduce[0] += time.perf_counter() - start
            in_allreduce[1] += 1
            return out
        dist.average_gradients = timed
    start = time.perf_counter()
    trainer.fit((X, Y), epochs=1, batch_size=GLOBAL_BATCH // size, bucket=False)
    seconds = time.perf_counter() - start
    logs = trainer.evaluate((Xv, Yv))
    if dist is None or dist.root:
        steps = -(-len(X) // GLOBAL_BATCH)
        result("train", ranks=size, threads=args.threads, seconds=seconds, steps=steps, windows=len(X),
               val_perplexity=logs["perplexity"], unigram_perplexity=unigram_perplexity(Y, Yv, args.vocab),
               parameters=model.num_parameters(),
               allreduce_bytes=sum(g.nbytes for g in model.grads().values()),
               allreduce_seconds_per_step=in_allreduce[0] / in_allreduce[1] if in_allreduce[1] else None)


def allreduce(args) -> None:
    """Median time of an in-place float32 Allreduce (sum) at each size, on every rank."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    for nbytes in SIZES:
        buf = np.ones(nbytes // 4, np.float32)
        times = []
        for _ in range(args.repeats):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        worst = comm.reduce(statistics.median(times), op=MPI.MAX)
        if comm.rank == 0:
            result("allreduce", ranks=comm.size, bytes=nbytes, seconds=worst)


def ring_seconds(nbytes: int, machines: int, bandwidth: float) -> float:
    """Ring Allreduce of ``nbytes`` over ``machines``: each sends and receives 2 (P - 1) / P of
    the buffer, in 2 (P - 1) messages."""
    p = machines
    return 2 * (p - 1) / p * nbytes / bandwidth + 2 * (p - 1) * LATENCY


def drive(args) -> None:
    from mpi_launcher import missing, run, run_mpi

    if missing():
        sys.exit(f"bench/distributed.py: {missing()}")
    me = [os.path.abspath(__file__), "--vocab", str(args.vocab), "--tokens", str(args.tokens),
          "--repeats", str(args.repeats)]
    # one process as a user starts it; the ranks as mpiexec starts them, one per core
    runs = [lambda: run([sys.executable, *me, "--train", "--threads", "2"], 3600),
            lambda: run_mpi(2, me + ["--train", "--threads", "1", "--distributed"], 3600, oversubscribe=False),
            lambda: run_mpi(2, me + ["--allreduce"], 3600, oversubscribe=False)]
    results, load = [], [os.getloadavg()[0]]
    for job in runs:
        status, output, _ = job()
        if status != 0:
            sys.exit(f"a run failed ({status}):\n{output}")
        results += [json.loads(line[7:]) for line in output.splitlines() if line.startswith("RESULT ")]
        load.append(os.getloadavg()[0])

    import rnnkit

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, rnnkit ISA "
          f"{rnnkit.get_isa()}; corpus {args.tokens} tokens, vocabulary {args.vocab}, "
          f"LSTM LM {MODEL}, {SEQ_LEN} steps, global batch {GLOBAL_BATCH}")
    print("1-minute load average before the runs and after each: " + ", ".join(f"{x:.1f}" for x in load) +
          " (other processes on the machine raise it above the ranks' own)")
    trains = [r for r in results if r["kind"] == "train"]
    print("\n| run | epoch (s) | steps | s / step | Allreduce s / step | val perplexity |")
    print("|---|---|---|---|---|---|")
    for r in trains:
        wait = r["allreduce_seconds_per_step"]
        print(f"| {r['ranks']} rank(s) x {r['threads']} thread(s) | {r['seconds']:.1f} | {r['steps']} | "
              f"{r['seconds'] / r['steps']:.3f} | {'-' if wait is None else f'{wait:.4f}'} | "
              f"{r['val_perplexity']:.4f} |")
    one, two = trains
    print(f"\nspeed-up of 2 ranks x 1 thread over 1 rank x 2 threads: {one['seconds'] / two['seconds']:.2f}; "
          f"validation perplexity of the unigram model: {one['unigram_perplexity']:.1f}")
    print(f"parameters {one['parameters']}; bytes allreduced per step {one['allreduce_bytes']} "
          f"(float32 gradients, plus a few sums)")
    print("\n| Allreduce size | 2 ranks here (ms) | GB/s (size / time) |")
    print("|---|---|---|")
    for r in (r for r in results if r["kind"] == "allreduce"):
        print(f"| {r['bytes'] / 1024:.0f} KiB | {r['seconds'] * 1e3:.3f} | {r['bytes'] / r['seconds'] / 1e9:.2f} |")
    t_c = one["seconds"] / one["steps"]
    S = one["allreduce_bytes"]
    print(f"\nprojection: t_c = {t_c:.3f} s per step (1 machine = the 1 x 2 run), S = {S / 1e6:.1f} MB, "
          f"latency {LATENCY * 1e6:.0f} us, ring Allreduce, no overlap with backward")
    print("\n| machines | " + " | ".join(f"{b:g} Gbit/s: Allreduce ms, speed-up" for b in args.bandwidth_gbit) + " |")
    print("|---|" + "---|" * len(args.bandwidth_gbit))
    for p in MACHINES:
        cells = []
        for gbit in args.bandwidth_gbit:
            t = ring_seconds(S, p, gbit * 1e9 / 8)
            cells.append(f"{t * 1e3:.0f} ms, {p * t_c / (t_c + t):.1f}x")
        print(f"| {p} | " + " | ".join(cells) + " |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--tokens", type=int, default=100000, help="training tokens (PTB: 929,589)")
    parser.add_argument("--repeats", type=int, default=20, help="Allreduce repetitions per size")
    parser.add_argument("--bandwidth-gbit", type=float, nargs="+", default=[10.0, 1.0])
    parser.add_argument("--quick", action="store_true", help="a tiny vocabulary and corpus (a smoke test)")
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--allreduce", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.vocab, args.tokens, args.repeats = 300, 3000, 3
    if args.train:
        train(args)
    elif args.allreduce:
        allreduce(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
