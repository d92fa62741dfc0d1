"""Training metrics: per-batch sums of the loss and metrics, and the epoch's logs from them.

A metric is "accuracy", "perplexity" (exp of the mean loss, computed from the loss sums) or a
callable ``(outputs, targets, mask) -> (sum, count)`` named by its ``__name__``. Sums are kept
as ``{name: [sum, count]}`` so batches of any size combine into exact means (and a checkpoint
can carry them in mid-epoch).
"""
from __future__ import annotations

import numpy as np

from .. import _device

__all__ = ["check_metrics", "accuracy_sums", "sum_names", "empty_sums", "batch_sums", "add_sums",
           "epoch_logs"]

NAMED_METRICS = ("accuracy", "perplexity")


def check_metrics(metrics) -> tuple:
    """``metrics`` (a name, or an iterable of names and callables) as a checked tuple."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    for m in metrics:
        if not (callable(m) or m in NAMED_METRICS):
            raise ValueError(f"unknown metric {m!r}; use 'accuracy', 'perplexity' or a callable")
    return tuple(metrics)


def accuracy_sums(outputs, targets, mask, ignore_index):
    """(correct, counted): argmax of outputs (..., C) against class indices, or logits > 0
    against targets > 0.5 for equal shapes (binary, multi-label); masked-out and ignored
    elements do not count. Works where the outputs live (NumPy or a device)."""
    xp = _device.array_module(outputs)
    out, t = xp.asarray(outputs), xp.asarray(targets)
    if out.ndim == t.ndim + 1:
        pred = out.argmax(axis=-1)
        valid = xp.ones(t.shape, bool) if mask is None else xp.asarray(mask).astype(bool)
        if ignore_index is not None:
            valid &= t != ignore_index
    elif out.shape == t.shape:  # binary / multi-label logits
        pred, t = out > 0, t > 0.5
        m = None if mask is None else xp.asarray(mask).astype(bool)
        valid = xp.ones(t.shape, bool) if m is None else xp.broadcast_to(
            m.reshape(m.shape + (1,) * (t.ndim - m.ndim)), t.shape)
    else:
        raise ValueError(f"accuracy needs outputs (..., C) with targets (...) or equal shapes; got "
                         f"{out.shape} and {t.shape}")
    return float(((pred == t) & valid).sum()), float(valid.sum())


def sum_names(metrics) -> list:
    """The names ``sums`` holds for ``metrics``: "loss" first, then each metric but perplexity
    (computed from the loss) in order."""
    names = ["loss"]
    for m in metrics:
        if m != "perplexity":
            names.append(m if m == "accuracy" else getattr(m, "__name__", "metric"))
    return names


def empty_sums(metrics) -> dict:
    """``{name: [0.0, 0.0]}`` for every name of ``sum_names(metrics)``: the sums of no data
    (so sums over any rows, none included, have the same names in the same order)."""
    return {name: [0.0, 0.0] for name in sum_names(metrics)}


def batch_sums(metrics, value: float, count: float, out, y, mask, ignore_index) -> dict:
    """One batch's sums: the loss (mean ``value`` over ``count`` elements) and the metrics."""
    sums = {"loss": [value * count, count]}
    for m, name in zip((m for m in metrics if m != "perplexity"), sum_names(metrics)[1:]):
        s, c = accuracy_sums(out, y, mask, ignore_index) if m == "accuracy" else m(out, y, mask)
        add_sums(sums, {name: [float(s), float(c)]})  # two metrics of one name add up
    return sums


def add_sums(sums: dict, more: dict) -> None:
    """Adds the sums ``more`` (e.g. one batch's) into ``sums``."""
    for name, (s, c) in more.items():
        a = sums.setdefault(name, [0.0, 0.0])
        a[0] += s
        a[1] += c


def epoch_logs(sums: dict, metrics, prefix: str = "") -> dict:
    """The means of ``sums`` by name (``prefix`` + name), perplexity from the mean loss."""
    loss_sum, count = sums["loss"]
    logs = {prefix + "loss": loss_sum / count if count else float("nan")}
    if "perplexity" in metrics:
        logs[prefix + "perplexity"] = float(np.exp(min(logs[prefix + "loss"], 700.0)))
    for name, (s, c) in sums.items():
        if name not in ("loss", "penalty"):
            logs[prefix + name] = s / c if c else float("nan")
    if "penalty" in sums and sums["penalty"][1]:
        logs[prefix + "penalty"] = sums["penalty"][0] / sums["penalty"][1]
    return logs
