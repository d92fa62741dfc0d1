"""Pictures: training curves, gradient flow through time, attention heat maps (docs/diagnostics.md).

Needs matplotlib, the optional ``plot`` extra (``pip install ".[plot]"`` from the repository, or
``pip install "matplotlib>=3.5"``). It is imported when a
function here is first called, not with rnnkit. The figures are plain
``matplotlib.figure.Figure`` objects drawn with the Agg renderer: no pyplot, no window, no GUI
backend and no global state, so everything works headless (servers, CI, tests) and does not
change the backend of a program that uses pyplot itself.

Every function returns its Figure; with ``path`` it also writes the figure there as a PNG file
(whatever the extension). With ``path=None`` nothing is written or shown: keep the Figure,
``fig.savefig(...)`` it or, in a notebook, ``display(fig)``. Each function also takes ``ax``
(a matplotlib Axes) to draw into an existing figure instead of a new one.
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["plot_history", "plot_gradient_norms", "plot_attention"]

_DPI = 100


def _matplotlib():
    """matplotlib.figure.Figure, or an ImportError saying how to get it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"rnnkit's pictures need matplotlib, which is not installed ({exc}); install the "
            'optional extra: pip install "matplotlib>=3.5" (or pip install ".[plot]" from the repository)'
        ) from exc
    return Figure


def _new_figure(width, height):
    Figure = _matplotlib()
    return Figure(figsize=(width, height), dpi=_DPI, layout="constrained")


def _finish(fig, path):
    if path is not None:
        fig.savefig(os.fspath(path), format="png", dpi=_DPI)
    return fig


def _axes(ax, width, height):
    if ax is not None:
        return ax.figure, ax
    fig = _new_figure(width, height)
    return fig, fig.add_subplot()


# ---------------------------------------------------------------------- training curves
def _history_dict(history):
    """(epochs, {name: values}) from a History, its ``history`` dict, or a list of losses."""
    if hasattr(history, "history") and hasattr(history, "epochs"):
        logs, epochs = history.history, list(history.epochs)
    elif isinstance(history, dict):
        logs, epochs = history, None
    else:
        logs, epochs = {"loss": list(history)}, None
    logs = {k: np.asarray(v, dtype=np.float64) for k, v in logs.items()}
    n = max((len(v) for v in logs.values()), default=0)
    if n == 0:
        raise ValueError("the history is empty: nothing to plot (train for at least one epoch)")
    if not epochs:
        epochs = list(range(1, n + 1))
    return np.asarray(epochs), logs


def plot_history(history, path=None, metrics=None, *, title=None):
    """Training curves, one panel per quantity against the epoch: the loss and every metric
    (training and, where recorded, validation ``val_*``), and the learning rate (``lr``, log
    scale) when the history has it.

    history: a ``rnnkit.train.History`` (what ``Trainer.fit`` returns), its ``history`` dict
    of lists, or a plain list of per-epoch losses. metrics: names of the training quantities
    to draw (e.g. ``["loss", "accuracy"]``; their ``val_`` partners come along); default all
    of them. Returns the Figure; writes a PNG at ``path`` if given.
    """
    epochs, logs = _history_dict(history)
    train_names = [k for k in logs if not k.startswith("val_") and k != "lr"]
    train_names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in logs]
    if metrics is None:
        names = sorted(train_names, key=lambda k: (k != "loss", train_names.index(k)))
    else:
        names = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in names if m not in train_names and m != "lr"]
        if unknown:
            raise ValueError(f"the history has no {unknown}; it records {sorted(logs)}")
    show_lr = "lr" in logs and (metrics is None or "lr" in names)
    names = [n for n in names if n != "lr"]
    panels = len(names) + show_lr
    fig = _new_figure(min(4.0 * panels, 12.0), 3.2)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, name in zip(axes, names):
        for key, label, style in ((name, "training", "-o"), ("val_" + name, "validation", "--s")):
            if key in logs:
                v = logs[key]
                ax.plot(epochs[:len(v)], v, style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if show_lr:
        ax = axes[-1]
        lr = logs["lr"]
        ax.plot(epochs[:len(lr)], lr, "-o", markersize=3, color="tab:green")
        if np.all(lr > 0) and lr.max() > 1.5 * lr.min():
            ax.set_yscale("log")
        elif np.all(np.isfinite(lr)) and lr.max() > 0:
            ax.set_ylim(0.0, 1.3 * lr.max())  # (nearly) constant: show it against zero
        ax.set_title("learning rate")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


# ---------------------------------------------------------------------- gradient flow
def plot_gradient_norms(norms, path=None, *, labels=None, title=None, ax=None):
    """||dLoss/dh_t|| against the time step t on a log scale (what
    ``rnnkit.diagnostics.gradient_norms`` returns).

    norms: an array (T,) or (num_layers, T), or a dict {label: such an array} to compare
    several networks in one picture. labels: names of the curves of a single array (one per
    layer). Zero, negative or NaN entries are left out (a log scale cannot show them).
    Returns the Figure; writes a PNG at ``path`` if given.
    """
    curves = []
    items = norms.items() if isinstance(norms, dict) else [(None, norms)]
    for name, value in items:
        a = np.asarray(value, dtype=np.float64)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2:
            raise ValueError(f"norms must be (T,) or (num_layers, T), got shape {a.shape}")
        for k, row in enumerate(a):
            if name is None:
                label = labels[k] if labels is not None else (f"layer {k}" if len(a) > 1 else None)
            else:
                label = name if len(a) == 1 else f"{name}, layer {k}"
            curves.append((label, row))
    fig, ax = _axes(ax, 6.4, 3.8)
    for label, row in curves:
        row = np.where(np.isfinite(row) & (row > 0), row, np.nan)
        ax.plot(np.arange(len(row)), row, label=label, linewidth=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("time step t")
    ax.set_ylabel("||dLoss / dh_t||")
    ax.grid(alpha=0.3, which="major")
    if any(label is not None for label, _ in curves):
        ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


# ---------------------------------------------------------------------- attention
def plot_attention(weights, src_tokens=None, tgt_tokens=None, path=None, *, title=None, ax=None):
    """Heat map of one example's attention weights (T target steps x S source steps), e.g. from
    ``Seq2Seq.attention_weights``: row t is where the decoder looked while producing target
    token t. The tokens label the axes; the weights are cut to their lengths when given.
    Returns the Figure; writes a PNG at ``path`` if given.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (target steps, source steps) for one example, got "
                         f"shape {w.shape}; take one row of the batch, e.g. weights[0]")
    src_tokens = None if src_tokens is None else [str(t) for t in src_tokens]
    tgt_tokens = None if tgt_tokens is None else [str(t) for t in tgt_tokens]
    T = w.shape[0] if tgt_tokens is None else len(tgt_tokens)
    S = w.shape[1] if src_tokens is None else len(src_tokens)
    if T > w.shape[0] or S > w.shape[1]:
        raise ValueError(f"{T} target and {S} source tokens for weights of shape {w.shape}")
    w = w[:T, :S]
    width = min(max(3.0, 0.42 * S + 1.8), 14.0)
    height = min(max(2.5, 0.36 * T + 1.6), 12.0)
    fig, ax = _axes(ax, width, height)
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(float(w.max(initial=0.0)), 1e-12),
                   aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(S))
    ax.set_yticks(np.arange(T))
    if src_tokens is not None:
        ax.set_xticklabels(src_tokens, rotation=60, ha="right", rotation_mode="anchor")
    if tgt_tokens is not None:
        ax.set_yticklabels(tgt_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    fig.colorbar(im, ax=ax, shrink=0.8, label="attention weight")
    if title:
        ax.set_title(title)
    return _finish(fig, path)
