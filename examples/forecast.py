"""Forecasting a real recorded signal that ships with CPython, offline.

Series: ``Lib/test/audiodata/pluck-pcm16.wav`` of the running interpreter's standard library
(CPython's test data: a plucked-string sound, 16-bit PCM, 11025 Hz, 2 channels, 3307 frames,
0.3 s; its pitch is middle C, a period of about 42 samples, and it decays). We use the mean
of the two channels, in raw 16-bit units. Split by time: the first 70% of the samples train
the model (and fit the scaler), the last 30% are the test period; every test sample is a
forecast origin (the model may look back into the training part for its input window).

Reports MAE / RMSE of one-step forecasts and of 5-step forecasts (recursive and direct)
against the naive last-value forecast (and, for reference, the seasonal-naive forecast one
pitch period back).

    python examples/forecast.py [--epochs 40] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sysconfig
import time
import wave

import numpy as np

import rnnkit
from rnnkit.models import Forecaster, forecast_errors, naive_forecast

PERIOD = 42  # samples per pitch period (the autocorrelation peak of the recording)


def load_pluck() -> np.ndarray:
    path = os.path.join(sysconfig.get_paths()["stdlib"], "test", "audiodata", "pluck-pcm16.wav")
    if not os.path.exists(path):
        raise SystemExit(f"{path} not found: this Python was installed without its test suite")
    with wave.open(path) as w:
        frames = w.readframes(w.getnframes())
        channels = w.getnchannels()
    return np.frombuffer(frames, "<i2").reshape(-1, channels).astype(np.float64).mean(axis=1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--input-len", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    rnnkit.set_num_threads(args.threads)

    s = load_pluck()
    split = int(0.7 * len(s))
    train = s[:split]
    print(f"series: pluck-pcm16.wav, mean of 2 channels, {len(s)} samples; train {split}, test {len(s) - split}")

    rows = []
    t0 = time.perf_counter()
    one = Forecaster(args.input_len, 1, hidden_size=32, epochs=args.epochs, lr=3e-3, seed=0).fit(train)
    p, a = one.rolling_forecast(s, split, 1)
    rows.append(("1-step", "LSTM (one-step model)", forecast_errors(p, a)))
    rows.append(("1-step", "naive last value", forecast_errors(*naive_forecast(s, split, 1))))
    rows.append(("1-step", f"seasonal naive (t-{PERIOD})", forecast_errors(*naive_forecast(s, split, 1, season=PERIOD))))
    h = args.horizon
    p, a = one.rolling_forecast(s, split, h)
    rows.append((f"{h}-step", "LSTM recursive", forecast_errors(p, a)))
    direct = Forecaster(args.input_len, h, strategy="direct", hidden_size=32, epochs=args.epochs, lr=3e-3,
                        seed=0).fit(train)
    p, a = direct.rolling_forecast(s, split, h)
    rows.append((f"{h}-step", "LSTM direct", forecast_errors(p, a)))
    rows.append((f"{h}-step", "naive last value", forecast_errors(*naive_forecast(s, split, h))))
    rows.append((f"{h}-step", f"seasonal naive (t-{PERIOD})",
                 forecast_errors(*naive_forecast(s, split, h, season=PERIOD))))
    print(f"trained 2 models in {time.perf_counter() - t0:.1f} s\n")
    print(f"| horizon | forecast | MAE | RMSE |\n|---|---|---|---|")
    for hz, name, e in rows:
        print(f"| {hz} | {name} | {e['mae']:.0f} | {e['rmse']:.0f} |")
    return rows


if __name__ == "__main__":
    main()
