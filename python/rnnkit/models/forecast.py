"""Forecasting numeric time series with a recurrent regressor.

- ``make_windows(series, input_len, horizon)``: (input window, following values) pairs.
- ``SeriesScaler``: per-feature standardisation (or min-max). ``Forecaster.fit`` fits it on the
  series it is given - the *training part only* - and applies those statistics to everything
  else (histories at prediction time, the test part), so nothing of the test period leaks into
  training.
- ``ForecastNet``: recurrent stack over the window -> last state -> Linear -> ``horizon`` values
  per feature (MSE), optionally residual (the network predicts the change from the window's
  last value).
- ``Forecaster``: the estimator. ``strategy="recursive"`` trains a one-step model and feeds its
  own predictions back for multi-step forecasts; ``"direct"`` trains one model that outputs all
  ``horizon`` steps at once. ``predict`` forecasts after one history, ``rolling_forecast``
  evaluates every forecast origin of a test period in one batch.
- ``naive_forecast`` (last value, or the value one season back) and ``forecast_errors``
  (MAE / RMSE): the baselines and metrics to compare against.

Univariate series are 1-D ``(T,)`` and give 1-D answers; multivariate series are ``(T, F)``.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..nn.module import check_positive_int, float_input
from ..nn.recurrent import recurrent_layer

__all__ = ["make_windows", "SeriesScaler", "ForecastNet", "Forecaster", "naive_forecast", "forecast_errors"]

STRATEGIES = ("recursive", "direct")


def _series(series, name="series", min_len=1) -> np.ndarray:
    s = np.asarray(series)
    if s.dtype.kind not in "iuf" or s.dtype == np.bool_:
        raise TypeError(f"{name} must be a numeric array (T,) or (T, F), got dtype {s.dtype}")
    if s.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (T,) or 2-D (T, F), got shape {s.shape}")
    if s.shape[0] == 0 or (s.ndim == 2 and s.shape[1] == 0):
        raise ValueError(f"{name} is empty (shape {s.shape})")
    if s.shape[0] < min_len:
        raise ValueError(f"{name} has {s.shape[0]} time steps; need at least {min_len}")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or inf")
    return s


def make_windows(series, input_len, horizon=1, *, stride=1):
    """Sliding windows over a series: ``X[i] = series[s:s+input_len]``,
    ``Y[i] = series[s+input_len:s+input_len+horizon]`` for s = 0, stride, ...

    series (T,) -> X (N, input_len, 1), Y (N, horizon); series (T, F) -> X (N, input_len, F),
    Y (N, horizon, F). N = (T - input_len - horizon) // stride + 1 (ValueError if T is too
    short)."""
    input_len = check_positive_int(input_len, "input_len")
    horizon = check_positive_int(horizon, "horizon")
    stride = check_positive_int(stride, "stride")
    s = _series(series, min_len=input_len + horizon)
    univariate = s.ndim == 1
    s2 = s[:, None] if univariate else s
    starts = np.arange(0, s2.shape[0] - input_len - horizon + 1, stride)
    X = s2[starts[:, None] + np.arange(input_len)[None, :]]
    Y = s2[starts[:, None] + input_len + np.arange(horizon)[None, :]]
    return X, (Y[..., 0] if univariate else Y)


class SeriesScaler:
    """Per-feature scaling fitted on one (training) part of a series. ``method="standard"``:
    (x - mean) / std; ``"minmax"``: (x - min) / (max - min). Constant features get scale 1."""

    def __init__(self, method="standard"):
        if method not in ("standard", "minmax"):
            raise ValueError(f"method must be 'standard' or 'minmax', got {method!r}")
        self.method = method
        self.center_ = self.scale_ = None

    def fit(self, series):
        s = _series(series, min_len=1)
        s2 = s[:, None] if s.ndim == 1 else s
        if self.method == "standard":
            center, scale = s2.mean(axis=0), s2.std(axis=0)
        else:
            center, scale = s2.min(axis=0), s2.max(axis=0) - s2.min(axis=0)
        self.center_, self.scale_ = center, np.where(scale > 0, scale, 1.0)
        return self

    def _check(self, a):
        if self.center_ is None:
            raise RuntimeError("SeriesScaler is not fitted; call fit(train_series) first")
        a = np.asarray(a, dtype=np.float64)
        if a.shape[-1:] != self.center_.shape and not (self.center_.shape == (1,)):
            raise ValueError(f"expected {self.center_.size} features in the last axis, got shape {a.shape}")
        return a

    def transform(self, a):
        """Works on series (T,)/(T, F) and on windows (..., F) alike."""
        a = self._check(a)
        c, s = (self.center_[0], self.scale_[0]) if self.center_.shape == (1,) else (self.center_, self.scale_)
        return (a - c) / s

    def inverse_transform(self, a):
        a = self._check(a)
        c, s = (self.center_[0], self.scale_[0]) if self.center_.shape == (1,) else (self.center_, self.scale_)
        return a * s + c


class ForecastNet(nn.Module):
    """Window (B, L, F) -> forecast (B, horizon, F): recurrent stack -> output at the last step
    -> dropout -> Linear(H, horizon * F). ``residual=True`` adds the window's last value to
    every forecast step (the network learns the change). Parameters ``rnn.*``, ``fc.{W,b}``."""

    def host_only_reason(self):
        # its decoding / scaling code is NumPy; not ported to device arrays
        return "rnnkit.models.ForecastNet runs on NumPy arrays only"

    def __init__(self, num_features=1, horizon=1, *, hidden_size=32, num_layers=1, cell="lstm", dropout=0.0,
                 residual=False, dtype=np.float32, seed=None):
        super().__init__(seed)
        self.num_features = check_positive_int(num_features, "num_features")
        self.horizon = check_positive_int(horizon, "horizon")
        self.residual = bool(residual)
        self.dtype = np.dtype(dtype)
        ss = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3)]
        self.rnn = recurrent_layer(cell)(self.num_features, hidden_size, num_layers, dropout=dropout,
                                     return_sequences=False, dtype=dtype, seed=ss[0])
        self.drop = nn.Dropout(dropout, seed=ss[1])
        self.fc = nn.Linear(self.rnn.output_size, self.horizon * self.num_features, dtype=dtype, seed=ss[2])
        self._shape = None

    def forward(self, x, *, lengths=None, training=False):
        x = float_input(x, "x", self.dtype, ndims=(3,), last=self.num_features,
                        meaning=" (B, input_len, num_features)")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x is empty (shape {x.shape}); need at least one window of at least one step")
        if lengths is not None:
            raise ValueError("ForecastNet takes full windows; lengths must be None")
        self._shape = x.shape
        h = self.rnn.forward(x, training=training)  # (B, H)
        y = self.fc.forward(self.drop.forward(h, training=training))
        y = y.reshape(x.shape[0], self.horizon, self.num_features)
        if self.residual:
            y = y + x[:, -1:, :]
        return y

    def backward(self, grad):
        if self._shape is None:
            raise RuntimeError("ForecastNet.backward called before forward")
        B, L, F = self._shape
        grad = np.asarray(grad, dtype=self.dtype).reshape(B, self.horizon, F)
        dh = self.drop.backward(self.fc.backward(np.ascontiguousarray(grad.reshape(B, -1))))
        dx = self.rnn.backward(dh).copy()  # (B, L, F)
        if self.residual:
            dx[:, -1, :] += grad.sum(axis=1)
        return dx


def naive_forecast(series, start, steps=1, *, season=1):
    """Baseline forecasts for every origin t = start .. T - steps: step j (0-based) of the
    forecast made at t is series[t - season + (j % season)] (season=1: the last value
    repeated). Returns (predictions, actual), each (N, steps) or (N, steps, F)."""
    s = _series(series)
    steps = check_positive_int(steps, "steps")
    season = check_positive_int(season, "season")
    start = _check_start(start, s.shape[0], steps, season)
    origins = np.arange(start, s.shape[0] - steps + 1)
    j = np.arange(steps)
    pred = s[origins[:, None] - season + (j % season)[None, :]]
    actual = s[origins[:, None] + j[None, :]]
    return pred, actual


def _check_start(start, T, steps, need):
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise TypeError(f"start must be an int index into the series, got {type(start).__name__}")
    if not need <= start <= T - steps:
        raise ValueError(f"start must lie in [{need}, T - steps = {T - steps}] so that every forecast has "
                         f"{need} past values and {steps} future ones, got {start}")
    return int(start)


def forecast_errors(pred, actual):
    """{"mae": mean |pred - actual|, "rmse": sqrt(mean (pred - actual)^2)} over all elements."""
    p, a = np.asarray(pred, np.float64), np.asarray(actual, np.float64)
    if p.shape != a.shape:
        raise ValueError(f"pred and actual must have the same shape, got {p.shape} and {a.shape}")
    d = p - a
    return {"mae": float(np.abs(d).mean()), "rmse": float(np.sqrt((d * d).mean()))}


class Forecaster:
    """Recurrent forecaster for a numeric series (scikit-learn style: arguments stored by
    ``__init__``, fitted attributes ``scaler_``, ``model_``, ``history_`` end with ``_``).

    Args:
        input_len: past values the model sees. horizon: steps the "direct" model outputs (and
            the default number of steps to forecast).
        strategy: "recursive" (one-step model, predictions fed back) or "direct".
        cell, hidden_size, num_layers, dropout, residual: the ``ForecastNet``.
        scale: "standard", "minmax" or None; fitted on the training series only.
        epochs, batch_size, lr, clip_norm, seed, verbose: training (Trainer, MSE, Adam).
    """

    def __init__(self, input_len, horizon=1, *, strategy="recursive", cell="lstm", hidden_size=32, num_layers=1,
                 dropout=0.0, residual=False, scale="standard", epochs=30, batch_size=32, lr=3e-3, clip_norm=1.0,
                 dtype=np.float32, seed=0, verbose=False):
        self.input_len = check_positive_int(input_len, "input_len")
        self.horizon = check_positive_int(horizon, "horizon")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if scale not in ("standard", "minmax", None):
            raise ValueError(f"scale must be 'standard', 'minmax' or None, got {scale!r}")
        self.strategy, self.cell, self.hidden_size, self.num_layers = strategy, cell, hidden_size, num_layers
        self.dropout, self.residual, self.scale = dropout, residual, scale
        self.epochs, self.batch_size, self.lr, self.clip_norm = epochs, batch_size, lr, clip_norm
        self.dtype, self.seed, self.verbose = np.dtype(dtype), seed, verbose
        self.scaler_ = self.model_ = self.history_ = None

    def fit(self, train_series, val_series=None):
        """Fits the scaler and the network on ``train_series`` (the training part only; windows
        are cut from it). ``val_series`` (optional, e.g. the following period) gives
        validation losses in ``history_``; it is scaled with the training statistics."""
        from ..train import Trainer

        s = _series(train_series, "train_series", min_len=self.input_len + 1)
        self.univariate_ = s.ndim == 1
        self.num_features_ = 1 if self.univariate_ else s.shape[1]
        self.scaler_ = None if self.scale is None else SeriesScaler(self.scale).fit(s)
        out_h = 1 if self.strategy == "recursive" else self.horizon
        if s.shape[0] < self.input_len + out_h:
            raise ValueError(f"train_series has {s.shape[0]} steps; need at least input_len + "
                             f"{'horizon' if out_h > 1 else '1'} = {self.input_len + out_h}")
        X, Y = self._windows(s, out_h)
        self.model_ = ForecastNet(self.num_features_, out_h, hidden_size=self.hidden_size,
                                  num_layers=self.num_layers, cell=self.cell, dropout=self.dropout,
                                  residual=self.residual, dtype=self.dtype, seed=self.seed)
        val = None
        if val_series is not None:
            v = _series(val_series, "val_series", min_len=self.input_len + out_h)
            val = self._windows(v, out_h)
        trainer = Trainer(self.model_, loss="mse", lr=self.lr, clip_norm=self.clip_norm, seed=self.seed,
                          quiet=not self.verbose)
        self.history_ = trainer.fit((X, Y), val, epochs=self.epochs, batch_size=self.batch_size)
        return self

    def _scaled(self, a):
        return a if self.scaler_ is None else self.scaler_.transform(a)

    def _windows(self, s, out_h):
        s2 = self._scaled(s)
        s2 = s2[:, None] if s2.ndim == 1 else s2
        X, Y = make_windows(s2, self.input_len, out_h)
        return X.astype(self.dtype), Y.astype(self.dtype)

    def _check_fitted(self):
        if self.model_ is None:
            raise RuntimeError("Forecaster is not fitted; call fit(train_series) first")

    def _steps(self, steps):
        steps = self.horizon if steps is None else check_positive_int(steps, "steps")
        if self.strategy == "direct" and steps > self.horizon:
            raise ValueError(f"the direct strategy forecasts at most horizon = {self.horizon} steps, "
                             f"got steps={steps} (use strategy='recursive' or a larger horizon)")
        return steps

    def predict_windows(self, windows, steps=None):
        """Forecasts after each window: windows (N, input_len) or (N, input_len, F) in the
        series' units -> (N, steps) or (N, steps, F)."""
        self._check_fitted()
        steps = self._steps(steps)
        w = np.asarray(windows, dtype=np.float64)
        if self.univariate_ and w.ndim == 2:
            w = w[..., None]
        if w.ndim != 3 or w.shape[1:] != (self.input_len, self.num_features_):
            raise ValueError(f"windows must have shape (N, input_len={self.input_len}"
                             f"{'' if self.univariate_ else f', {self.num_features_}'}), got {np.shape(windows)}")
        if w.shape[0] == 0:
            raise ValueError("windows is empty (N = 0)")
        if not np.all(np.isfinite(w)):
            raise ValueError("windows contain NaN or inf")
        x = self._scaled(w).astype(self.dtype)
        if self.strategy == "direct":
            y = self.model_.forward(x)[:, :steps].astype(np.float64)
        else:
            outs = []
            for _ in range(steps):
                nxt = self.model_.forward(x)  # (N, 1, F)
                outs.append(nxt[:, 0].astype(np.float64))
                x = np.concatenate([x[:, 1:], nxt.astype(self.dtype)], axis=1)
            y = np.stack(outs, axis=1)
        if self.scaler_ is not None:
            y = self.scaler_.inverse_transform(y)
        return y[..., 0] if self.univariate_ else y

    def predict(self, history, steps=None):
        """The next ``steps`` values (default ``horizon``) after ``history`` (its last
        input_len values are used): (steps,) or (steps, F)."""
        self._check_fitted()
        h = _series(history, "history", min_len=self.input_len)
        if (h.ndim == 1) != self.univariate_ or (h.ndim == 2 and h.shape[1] != self.num_features_):
            raise ValueError(f"history must look like the training series ({'(T,)' if self.univariate_ else f'(T, {self.num_features_})'}), "
                             f"got shape {h.shape}")
        return self.predict_windows(h[None, -self.input_len:], steps)[0]

    def rolling_forecast(self, series, start, steps=None):
        """Forecasts made at every origin t = start .. T - steps from series[:t] (last
        input_len values), against series[t:t+steps]. Returns (predictions, actual), each
        (N, steps) or (N, steps, F) - the layout of ``naive_forecast``."""
        self._check_fitted()
        s = _series(series)
        steps = self._steps(steps)
        start = _check_start(start, s.shape[0], steps, self.input_len)
        origins = np.arange(start, s.shape[0] - steps + 1)
        w = s[origins[:, None] - self.input_len + np.arange(self.input_len)[None, :]]
        actual = s[origins[:, None] + np.arange(steps)[None, :]]
        return self.predict_windows(w, steps), actual
