"""Learning-rate schedules, stepped once per epoch.

``sched.start(optimizer)`` records the optimiser's lr as the base lr (the Trainer calls it);
``sched.step(metric=None)`` is called after each epoch and sets ``optimizer.lr`` for the next
one. ``state_dict()`` / ``load_state_dict()`` make a resumed run continue exactly.

- ``StepLR(step_size, gamma=0.1)``: lr = base * gamma ** (epoch // step_size).
- ``CosineLR(T_max, eta_min=0.0)``: lr = eta_min + (base - eta_min) * (1 + cos(pi * e / T_max)) / 2
  for epochs e = 0..T_max, then eta_min.
- ``ReduceLROnPlateau(mode="min", factor=0.1, patience=10, threshold=1e-4, cooldown=0,
  min_lr=0.0)``: multiplies lr by ``factor`` when the metric (the Trainer passes val_loss, or
  the training loss without validation data) has not improved by a relative ``threshold`` for
  more than ``patience`` epochs (PyTorch's rule).
"""
from __future__ import annotations

import math

from .._checks import check_positive_int

__all__ = ["Schedule", "StepLR", "CosineLR", "ReduceLROnPlateau"]


class Schedule:
    def __init__(self):
        self.optimizer = None
        self.base_lr = None
        self.epoch = 0

    def start(self, optimizer) -> None:
        """Attaches to ``optimizer``; its lr becomes the base lr (unless loaded from a state)."""
        self.optimizer = optimizer
        if self.base_lr is None:
            self.base_lr = float(optimizer.lr)

    def step(self, metric: float | None = None) -> float:
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__}.start(optimizer) must be called before step()")
        self.epoch += 1
        self.optimizer.lr = float(self._lr(metric))
        return self.optimizer.lr

    def _lr(self, metric):  # pragma: no cover - abstract
        raise NotImplementedError

    def _extra_state(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "base_lr": self.base_lr, "epoch": self.epoch, **self._extra_state()}

    def load_state_dict(self, d: dict) -> None:
        if d.get("type") != type(self).__name__:
            raise ValueError(f"state is for a {d.get('type')} schedule, this is a {type(self).__name__}")
        for k, v in d.items():
            if k != "type":
                setattr(self, k, v)


class StepLR(Schedule):
    def __init__(self, step_size: int, gamma: float = 0.1):
        super().__init__()
        step_size = check_positive_int(step_size, "step_size")
        if not gamma > 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        self.step_size, self.gamma = step_size, float(gamma)

    def _lr(self, metric):
        return self.base_lr * self.gamma ** (self.epoch // self.step_size)


class CosineLR(Schedule):
    def __init__(self, T_max: int, eta_min: float = 0.0):
        super().__init__()
        T_max = check_positive_int(T_max, "T_max")
        if not eta_min >= 0:
            raise ValueError(f"eta_min must be >= 0, got {eta_min!r}")
        self.T_max, self.eta_min = T_max, float(eta_min)

    def _lr(self, metric):
        e = min(self.epoch, self.T_max)
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2


class ReduceLROnPlateau(Schedule):
    def __init__(self, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor!r}")
        patience = check_positive_int(patience, "patience", 0)
        self.mode, self.factor, self.patience = mode, float(factor), patience
        self.threshold, self.cooldown, self.min_lr = float(threshold), int(cooldown), float(min_lr)
        self.best = None
        self.bad_epochs = 0
        self.cooldown_left = 0

    def _improved(self, metric) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return metric < self.best * (1 - self.threshold) if self.best > 0 else metric < self.best * (1 + self.threshold)
        return metric > self.best * (1 + self.threshold) if self.best > 0 else metric > self.best * (1 - self.threshold)

    def _lr(self, metric):
        lr = self.optimizer.lr
        if metric is None:
            raise ValueError("ReduceLROnPlateau.step needs the monitored metric")
        metric = float(metric)
        if self._improved(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            lr = max(lr * self.factor, self.min_lr)
            self.cooldown_left, self.bad_epochs = self.cooldown, 0
        return lr

    def _extra_state(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "cooldown_left": self.cooldown_left}
