"""Training callbacks: the per-epoch ``History`` and ``EarlyStopping``."""
from __future__ import annotations

import copy

from .._checks import check_positive_int

__all__ = ["History", "EarlyStopping"]


class History:
    """Per-epoch records: ``history["loss"]``, ``history["val_loss"]``, ``history.epochs``...
    (Keras style: ``history.history`` is the dict of lists)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epochs: list[int] = []
        self.stopped_early = False

    def append(self, epoch: int, logs: dict) -> None:
        self.epochs.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def keys(self):
        return self.history.keys()

    def last(self) -> dict:
        return {k: v[-1] for k, v in self.history.items()}

    def to_dict(self) -> dict:
        return {"history": copy.deepcopy(self.history), "epochs": list(self.epochs),
                "stopped_early": self.stopped_early}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        h = cls()
        h.history, h.epochs, h.stopped_early = copy.deepcopy(d["history"]), list(d["epochs"]), d["stopped_early"]
        return h

    def plot(self, path=None, metrics=None):
        """Training curves (loss, metrics, training and validation, learning rate) as a
        matplotlib Figure, also written as PNG at ``path`` if given; needs the ``plot`` extra.
        See ``rnnkit.plot.plot_history``."""
        from ..plot import plot_history

        return plot_history(self, path, metrics)

    def __repr__(self) -> str:
        return f"History({len(self.epochs)} epochs, {self.last()})"


class EarlyStopping:
    """Stops when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; with
    ``restore_best`` the model gets back the weights of its best epoch at the end of ``fit``,
    whether training stopped early or ran out of epochs after the best one."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True):
        patience = check_positive_int(patience, "patience", 0)
        if mode == "auto":
            mode = "max" if any(s in monitor for s in ("acc", "score")) else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.mode, self.restore_best = mode, bool(restore_best)
        self.best = None
        self.best_epoch = None
        self.wait = 0
        self.best_state = None

    def update(self, epoch: int, logs: dict, model) -> bool:
        """Records the epoch; returns True when training should stop."""
        if self.monitor not in logs:
            raise KeyError(f"early stopping monitors {self.monitor!r}, but the epoch logs have only "
                           f"{sorted(logs)} (give validation data to monitor val_* values)")
        value = float(logs[self.monitor])
        better = (self.best is None or
                  (value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta))
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = model.state_dict()
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore_best_weights(self, model, last_epoch: int) -> bool:
        """With ``restore_best``, loads the best epoch's weights into ``model`` unless
        ``last_epoch`` was the best (its weights are already there). Returns whether it did."""
        if not self.restore_best or self.best_state is None or self.best_epoch == last_epoch:
            return False
        model.load_state_dict(self.best_state)
        return True

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self.best_state}

    def load_state_dict(self, d: dict) -> None:
        self.best, self.best_epoch, self.wait, self.best_state = d["best"], d["best_epoch"], d["wait"], d["best_state"]

