"""Gradient flow through time on the adding problem: why vanilla RNNs fail on long dependencies,
why forget gates help, and what gradient clipping does.

Adding problem (Hochreiter & Schmidhuber 1997): every step carries a random value in [0, 1] and
a marker; exactly two steps are marked, one in each half of the sequence, and the target is the
sum of the two marked values. Predicting the mean (1.0) gives a mean squared error of about
0.167; doing better needs information from the first half to survive to the last step.

Each network is ``Sequential(RNN/LSTM/GRU(2, H, return_sequences=False), Linear(H, 1))`` with
the MSE loss. ``rnnkit.diagnostics.gradient_norms`` follows the loss back through time with
the BPTT kernels and reports ||dLoss/dh_t|| for every step t:

  (a) at initialisation: a vanilla RNN whose recurrent weights are scaled down (x0.5) loses
      the gradient geometrically (vanishing), the orthogonal default (x1) more slowly, a large
      scale (x3) makes it grow towards early steps (exploding); the LSTM's cell path with
      forget bias 1 and the GRU's update gate are shown beside them;
  (b) after training with Adam (gradient clipping at norm 1): the same measurement;
  (c) the RNN with recurrent scale x3 trained with plain SGD, batch by batch: without clipping
      the exploding gradients blow the weights up (the loss reaches inf/NaN within a few dozen
      batches); clipping the global gradient norm at 1 bounds every update and keeps the loss
      finite (it does not make this saturated network learn the task: that is (b)'s point).

    python examples/gradient_flow.py [--steps 50] [--epochs 20] [--plot docs/img/gradient_flow.png]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import rnnkit
from rnnkit import nn
from rnnkit.diagnostics import gradient_norms
from rnnkit.train import SGD, Trainer, clip_grad_norm, global_norm, mse


def adding_problem(n, steps, rng):
    """x (n, steps, 2) float32 [value, marker], y (n, 1): the sum of the two marked values."""
    x = np.zeros((n, steps, 2), np.float32)
    x[..., 0] = rng.random((n, steps))
    first = rng.integers(0, steps // 2, n)
    second = rng.integers(steps // 2, steps, n)
    rows = np.arange(n)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None]
    return x, y.astype(np.float32)


def network(cell, hidden, scale=1.0, seed=0):
    """cell 'rnn' | 'lstm' | 'gru'; the recurrent weights Wh multiplied by ``scale``."""
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](
        2, hidden, return_sequences=False, seed=seed)
    layer.l0.fwd.Wh[...] *= scale
    return nn.Sequential(rnn=layer, fc=nn.Linear(hidden, 1, seed=seed + 1))


def sgd_run(model, X, Y, clip, batches, batch_size=50, lr=0.05):
    """Plain SGD by hand, to see every batch: (losses, global gradient norms before clipping);
    stops at the first non-finite loss."""
    opt = SGD(model.parameters(), lr=lr)
    losses, norms = [], []
    for k in range(batches):
        i = (k * batch_size) % len(X)
        model.zero_grad()
        out = model.forward(X[i:i + batch_size], training=True)
        loss, grad, _ = mse(out, Y[i:i + batch_size])
        losses.append(float(loss))
        if not np.isfinite(loss):
            norms.append(np.nan)
            break
        model.backward(grad)
        grads = model.grads()
        norms.append(clip_grad_norm(grads, clip) if clip else global_norm(grads))
        opt.step(grads)
    return np.array(losses), np.array(norms)


def report(label, norms):
    print(f"{label:28s} ||dL/dh_0|| / ||dL/dh_T-1|| = gradient ratio {norms[0] / norms[-1]:9.2e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="sequence length T")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batches", type=int, default=80, help="SGD batches in (c)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", metavar="PATH", help="write the three panels as a PNG file "
                    '(needs matplotlib: pip install "rnnkit[plot]")')
    args = ap.parse_args(argv)
    rnnkit.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X, Y = adding_problem(args.train, args.steps, rng)
    Xv, Yv = adding_problem(max(args.train // 4, 50), args.steps, rng)
    probe = (Xv[:100], Yv[:100])
    print(f"adding problem: T={args.steps}, {len(X)} training / {len(Xv)} validation sequences; "
          f"predicting the mean gives MSE {np.mean((Yv - 1.0) ** 2):.3f}")

    print("\n(a) at initialisation")
    initial = {}
    for label, cell, scale in (("RNN, Wh x0.5", "rnn", 0.5), ("RNN, Wh orthogonal (x1)", "rnn", 1.0),
                               ("RNN, Wh x3", "rnn", 3.0), ("LSTM, forget bias 1", "lstm", 1.0),
                               ("GRU", "gru", 1.0)):
        initial[label] = gradient_norms(network(cell, args.hidden, scale), *probe, loss="mse")[0]
        report(label, initial[label])

    print("\n(b) after training (Adam, lr 3e-3, clip_norm 1)")
    trained = {}
    for cell in ("rnn", "lstm", "gru"):
        model = network(cell, args.hidden)
        start = time.perf_counter()
        history = Trainer(model, loss="mse", optimizer="adam", lr=3e-3, clip_norm=1.0, quiet=True).fit(
            (X, Y), (Xv, Yv), epochs=args.epochs, batch_size=50)
        label = f"{cell.upper()}, val MSE {history['val_loss'][-1]:.3f}"
        trained[label] = gradient_norms(model, *probe, loss="mse")[0]
        report(label, trained[label])
        print(f"{'':28s} ({args.epochs} epochs, {time.perf_counter() - start:.1f} s)")

    print(f"\n(c) RNN with Wh x3, SGD lr 0.05, the first {args.batches} batches: gradient clipping")
    curves = {}
    for clip in (None, 1.0):
        label = "no clipping" if clip is None else f"clip_norm={clip:g}"
        curves[label] = sgd_run(network("rnn", args.hidden, 3.0), X, Y, clip, args.batches)
        losses, norms = curves[label]
        print(f"{label:28s} loss {losses[0]:.3g} -> {losses[-1]:.3g} after {len(losses)} batches, "
              f"largest gradient norm {np.nanmax(norms):.3g}"
              + ("" if np.isfinite(losses[-1]) else " (non-finite: stopped)"))

    if args.plot:
        draw(args, initial, trained, curves)
        print(f"\npicture written to {args.plot}")


def draw(args, initial, trained, curves):
    from matplotlib.figure import Figure

    from rnnkit.plot import plot_gradient_norms

    fig = Figure(figsize=(15, 4.2), dpi=80, layout="constrained")
    a, b, c = fig.subplots(1, 3)
    plot_gradient_norms(initial, ax=a, title=f"(a) at initialisation, T={args.steps}")
    plot_gradient_norms(trained, ax=b, title=f"(b) after {args.epochs} epochs (Adam, clip 1)")
    for label, (losses, norms) in curves.items():
        line, = c.plot(np.arange(1, len(losses) + 1), losses, "-", label=label)
        if not np.isfinite(losses[-1]):
            last = np.flatnonzero(np.isfinite(losses))[-1]
            c.annotate("next loss inf/NaN:\ntraining stops", (last + 1, losses[last]), color=line.get_color(),
                       textcoords="offset points", xytext=(-95, -18), fontsize=8)
    c.set_yscale("log")
    c.set_xlabel("batch")
    c.set_ylabel("training MSE")
    c.set_title("(c) RNN, Wh x3, SGD lr 0.05: gradient clipping")
    c.grid(alpha=0.3)
    c.legend(fontsize="small")
    fig.savefig(args.plot, format="png")


if __name__ == "__main__":
    main()
