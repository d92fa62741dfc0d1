"""Forecaster: windows, train-only scaling, ForecastNet float64 gradient checks, recursive vs
direct, baselines, bad input."""
import numpy as np
import pytest
from fdcheck import assert_central_differences

from rnnkit.models import (ForecastNet, Forecaster, SeriesScaler, forecast_errors, make_windows,
                           naive_forecast)
from rnnkit.train.losses import mse


def test_make_windows():
    s = np.arange(10.0)
    X, Y = make_windows(s, 3, 2)
    assert X.shape == (6, 3, 1) and Y.shape == (6, 2)
    assert np.array_equal(X[0, :, 0], [0, 1, 2]) and np.array_equal(Y[0], [3, 4])
    assert np.array_equal(X[-1, :, 0], [5, 6, 7]) and np.array_equal(Y[-1], [8, 9])
    X2, Y2 = make_windows(np.stack([s, -s], 1), 4, 1, stride=3)
    assert X2.shape == (2, 4, 2) and Y2.shape == (2, 1, 2)
    assert np.array_equal(Y2[1, 0], [7, -7])


@pytest.mark.parametrize("cell,residual", [("lstm", False), ("gru", True), ("rnn", False)])
def test_gradcheck_float64(cell, residual):
    m = ForecastNet(2, 3, hidden_size=4, num_layers=2, cell=cell, residual=residual, dtype=np.float64, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2))
    y = rng.standard_normal((3, 3, 2))

    def f(xx):
        return mse(m.forward(xx), y)[0]

    m.zero_grad()
    _, g, _ = mse(m.forward(x), y)
    dx = m.backward(g)
    targets = [(name, p, m.grads()[name]) for name, p in m.parameters().items()]
    assert_central_differences(lambda: f(x), targets + [("x", x, dx)])


def _series(n=360, seed=0):
    t = np.arange(n)
    return 50 + 10 * np.sin(2 * np.pi * t / 24) + 0.05 * t + np.random.default_rng(seed).normal(0, 0.5, n)


def test_scaler_fitted_on_train_only():
    s = _series()
    s[300:] += 1000.0  # a test period far away: must not influence the fitted statistics
    f = Forecaster(12, 1, hidden_size=4, epochs=1).fit(s[:300])
    assert f.scaler_.center_[0] == pytest.approx(s[:300].mean())
    assert f.scaler_.scale_[0] == pytest.approx(s[:300].std())
    sc = SeriesScaler("minmax").fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(sc.transform(np.array([[2.0, 5.0]])), [[0.5, 0.0]])
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(np.array([[7.0, 1.0]]))), [[7.0, 1.0]])


def test_recursive_and_direct_shapes_and_beat_naive():
    s = _series()
    split = 288
    rec = Forecaster(24, 6, hidden_size=16, epochs=15, seed=0).fit(s[:split])
    direct = Forecaster(24, 6, strategy="direct", hidden_size=16, epochs=15, seed=0).fit(s[:split])
    assert rec.model_.horizon == 1 and direct.model_.horizon == 6
    assert rec.predict(s[:split]).shape == (6,)
    assert rec.predict(s[:split], steps=10).shape == (10,)
    assert direct.predict(s[:split], steps=4).shape == (4,)
    p_rec, actual = rec.rolling_forecast(s, split, 6)
    p_dir, actual2 = direct.rolling_forecast(s, split, 6)
    naive, actual3 = naive_forecast(s, split, 6)
    assert p_rec.shape == p_dir.shape == naive.shape == (360 - split - 5, 6)
    assert np.array_equal(actual, actual2) and np.array_equal(actual, actual3)
    e_naive = forecast_errors(naive, actual)["mae"]
    assert forecast_errors(p_rec, actual)["mae"] < e_naive
    assert forecast_errors(p_dir, actual)["mae"] < e_naive
    # recursive step 1 equals the one-step forecast (float32 model; a different batch size
    # may change the BLAS summation order, so allow float32 rounding)
    one = rec.rolling_forecast(s, split, 1)[0]
    np.testing.assert_allclose(p_rec[:, 0], one[:len(p_rec), 0], rtol=1e-5)


def test_multivariate_and_naive_seasonal():
    s = np.stack([_series(), _series(seed=1)], axis=1)
    f = Forecaster(10, 3, strategy="direct", hidden_size=4, epochs=1).fit(s[:200])
    assert f.predict(s[:200]).shape == (3, 2)
    p, a = f.rolling_forecast(s, 200, 2)
    assert p.shape == a.shape == (359 - 200, 2, 2)
    x = np.arange(20.0)
    pred, act = naive_forecast(x, 10, 3, season=4)
    assert np.array_equal(pred[0], [6, 7, 8]) and np.array_equal(act[0], [10, 11, 12])
    assert np.array_equal(naive_forecast(x, 10, 2)[0][0], [9, 9])
    assert forecast_errors([1.0, 3.0], [2.0, 1.0]) == {"mae": 1.5, "rmse": pytest.approx(np.sqrt(2.5))}


def test_bad_input():
    with pytest.raises(ValueError, match="series is empty"):
        make_windows(np.array([]), 2)
    with pytest.raises(ValueError, match="at least 4"):
        make_windows(np.arange(3.0), 3, 1)
    with pytest.raises(ValueError, match="input_len"):
        make_windows(np.arange(10.0), 0)
    with pytest.raises(ValueError, match="NaN"):
        make_windows(np.array([1.0, np.nan, 2.0, 3.0]), 1)
    with pytest.raises(ValueError, match="strategy"):
        Forecaster(3, strategy="sideways")
    with pytest.raises(RuntimeError, match="not fitted"):
        Forecaster(3).predict(np.arange(5.0))
    s = _series(80)
    f = Forecaster(8, 2, strategy="direct", hidden_size=3, epochs=1).fit(s[:60])
    with pytest.raises(ValueError, match="at most horizon"):
        f.predict(s, steps=3)
    with pytest.raises(ValueError, match="history has 5 time steps"):
        f.predict(s[:5])
    with pytest.raises(ValueError, match="start must lie"):
        f.rolling_forecast(s, 79)
    with pytest.raises(ValueError, match="windows must have shape"):
        f.predict_windows(np.zeros((2, 7)))
    with pytest.raises(ValueError, match="train_series has"):
        Forecaster(8, 5, strategy="direct").fit(s[:10])
    with pytest.raises(ValueError, match="x is empty"):
        ForecastNet(1, 1).forward(np.zeros((0, 3, 1), np.float32))
    with pytest.raises(ValueError, match="lengths"):
        ForecastNet(1, 1).forward(np.zeros((2, 3, 1), np.float32), lengths=np.array([3, 2]))
