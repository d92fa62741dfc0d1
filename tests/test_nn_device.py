"""rnnkit.nn layers, losses, optimisers and the Trainer on device arrays: ``model.to(device)``.

Every test runs on each device: "cuda_emulated" (the CUDA backend's algorithm on the host,
tests/emulated_device.py, whose arrays refuse to mix with NumPy arrays as CuPy's do) everywhere,
and "cuda" (CuPy) where a GPU is visible. A model moved to the device must give the host
model's results.

Tolerances (float64, scaled error as tests/compare.py): on the device the recurrent kernels
are the CUDA algorithm (cuBLAS's GEMM conventions, another summation order) instead of the CPU
backend's, and the dense products are the array library's instead of rnnkit's pool: both sides
round differently at ~1e-16 per operation, which test_parity.py bounds by 1e-12 for the
kernels. Layer results sit a few operations on top: 1e-12. Training compounds it over steps
that are contractions for plain SGD with momentum at a small learning rate (no division by
gradient statistics, which would amplify a rounding-level gradient into a step-sized
difference as Adam's m / sqrt(v) does for a near-zero gradient): 1e-9 after a few epochs.
Elementwise code (optimiser updates on given gradients, losses) runs the same NumPy operations
on the emulated device: bit-identical there, 1e-12 on a GPU. Measured on the emulated device:
3e-16 for the layers, 1e-16 for the trained weights.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import rnnkit
from rnnkit import _device, nn
from rnnkit.models import SequenceClassifier
from rnnkit.train import SGD, Adam, AdamW, RMSprop, Regularizer, Trainer, clip_grad_norm, clip_grad_value
from rnnkit.train.losses import binary_cross_entropy_with_logits, cross_entropy, mse

import cuda_support as gpu
import emulated_device as E
from compare import scaled_error

DEVICES = [
    pytest.param("cuda_emulated", marks=pytest.mark.skipif(E.BACKEND is None, reason="no emulation build")),
    pytest.param("cuda", marks=gpu.requires_gpu),
]
TOL_LAYER = 1e-12
TOL_TRAIN = 1e-9


def _host(a):
    return None if a is None else _device.to_host(a)


def _on(device, a):
    return _device.backend_named(device).to_device(np.asarray(a))


def _exact(device) -> bool:
    """Elementwise NumPy code is bit-identical on the emulated device."""
    return device == "cuda_emulated"


def _assert_close(got, want, tol, what):
    got = _host(got)
    assert type(got) is np.ndarray, what
    assert got.shape == want.shape and got.dtype == want.dtype, what
    err = scaled_error(got, want)
    assert err <= tol, f"{what} differs by {err:.2e}"


def _assert_lives_on(device, *arrays):
    backend = _device.backend_named(device)
    for a in arrays:
        assert _device.backend_of(a) is backend, type(a).__name__


# ----------------------------------------------------------------------------- layers

B_, T_ = 4, 6
LENGTHS = np.array([6, 3, 0, 5])
F64 = np.float64


def _seq(width, seed):
    return np.random.default_rng(seed).standard_normal((B_, T_, width))


LAYERS = {  # id -> (layer factory, input factory, forward keywords)
    "linear-lengths": (lambda: nn.Linear(5, 3, dtype=F64, seed=1), lambda: _seq(5, 2), dict(lengths=LENGTHS)),
    "linear-2d": (lambda: nn.Linear(5, 3, dtype=F64, seed=1), lambda: _seq(5, 2)[:, 0], {}),
    "dropout": (lambda: nn.Dropout(0.4, seed=3), lambda: _seq(5, 4), dict(training=True)),
    "last": (lambda: nn.LastStep(), lambda: _seq(5, 5), dict(lengths=LENGTHS)),
    "mean": (lambda: nn.MeanPool(), lambda: _seq(5, 5), dict(lengths=LENGTHS)),
    "max": (lambda: nn.MaxPool(), lambda: _seq(5, 5), dict(lengths=LENGTHS)),
    "rnn-relu-2layer-residual": (
        lambda: nn.RNN(5, 5, 2, nonlinearity="relu", skip="residual", dropout=0.3, dtype=F64, seed=6),
        lambda: _seq(5, 7), dict(lengths=LENGTHS, training=True)),
    "lstm-bi-proj-peep-recdrop": (
        lambda: nn.LSTM(5, 7, 2, bidirectional=True, proj_size=3, peepholes=True, recurrent_dropout=0.25,
                        dtype=F64, seed=8),
        lambda: _seq(5, 9), dict(lengths=LENGTHS, training=True)),
    "gru-cho-dense-mul-last": (
        lambda: nn.GRU(5, 4, 2, bidirectional=True, merge="mul", skip="dense", linear_before_reset=False,
                       return_sequences=False, dtype=F64, seed=10),
        lambda: _seq(5, 11), dict(lengths=LENGTHS)),
    "lstm-timemajor-sum": (
        lambda: nn.LSTM(5, 6, bidirectional=True, merge="sum", batch_first=False, dtype=F64, seed=12),
        lambda: _seq(5, 13).transpose(1, 0, 2).copy(), {}),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_forward_backward_on_device_matches_host(device, name):
    make, make_x, kw = LAYERS[name]
    host = make()
    dev = copy.deepcopy(host).to(device)
    x = make_x()
    want = host.forward(x, **kw)
    got = dev.forward(_on(device, x), **kw)
    _assert_lives_on(device, got)
    _assert_close(got, want, TOL_LAYER, f"{name} forward")
    g = np.random.default_rng(99).standard_normal(want.shape)
    dx_want = host.backward(g)
    dx_got = dev.backward(_on(device, g))
    _assert_lives_on(device, dx_got)
    _assert_close(dx_got, dx_want, TOL_LAYER, f"{name} dx")
    for k, gw in host.grads().items():
        _assert_lives_on(device, dev.grads()[k])
        _assert_close(dev.grads()[k], gw, TOL_LAYER, f"{name} grad {k}")


@pytest.mark.parametrize("device", DEVICES)
def test_embedding_and_initial_state_on_device(device):
    """Embedding's lookup and scatter-add (with padding and repeated ids), and a recurrent
    stack's initial_state and return_state, on the device."""
    ids = np.array([[1, 2, 0, 2], [3, 3, 3, 1]])
    host = nn.Sequential(embed=nn.Embedding(5, 4, padding_idx=0, dtype=F64, seed=1))
    dev = copy.deepcopy(host).to(device)
    out = dev.forward(_on(device, ids))
    _assert_close(out, host.forward(ids), 0.0, "lookup")
    g = np.random.default_rng(2).standard_normal(out.shape)
    assert dev.backward(_on(device, g)) is None and host.backward(g) is None
    _assert_close(dev.grads()["embed.W"], host.grads()["embed.W"], TOL_LAYER, "dW")
    assert not _host(dev.grads()["embed.W"])[0].any()  # the padding row gets no gradient

    lstm = nn.LSTM(3, 4, 2, return_state=True, dtype=F64, seed=3)
    dlstm = copy.deepcopy(lstm).to(device)
    rng = np.random.default_rng(4)
    init = [(rng.standard_normal((2, 4)), rng.standard_normal((2, 4))) for _ in range(2)]
    x = rng.standard_normal((2, 5, 3))
    y, states = lstm.forward(x, initial_state=init, lengths=[5, 2])
    dy, dstates = dlstm.forward(_on(device, x), lengths=_on(device, [5, 2]),  # lengths from either side
                                initial_state=[tuple(_on(device, a) for a in s) for s in init])
    _assert_close(dy, y, TOL_LAYER, "y")
    for s_got, s_want in zip(dstates, states):
        for a, b in zip(s_got, s_want):
            _assert_close(a, b, TOL_LAYER, "final state")
    gy = rng.standard_normal(y.shape)
    lstm.backward((gy, None))
    dlstm.backward((_on(device, gy), None))
    for a, b in zip(dlstm.dinitial_state, lstm.dinitial_state):
        _assert_close(a[0], b[0], TOL_LAYER, "dh0")
        _assert_close(a[1], b[1], TOL_LAYER, "dc0")


# ----------------------------------------------------------------------------- moving

def _classifier(**kw):
    return SequenceClassifier(12, 3, embedding_dim=5, hidden_size=6, num_layers=2, bidirectional=True,
                              dropout=0.2, recurrent_dropout=0.1, pooling="max", dtype=F64, seed=5, **kw)


@pytest.mark.parametrize("device", DEVICES)
def test_to_moves_parameters_grads_and_back(device):
    model = _classifier()
    before = model.state_dict()
    assert model.device == "cpu"
    assert model.to(device) is model and model.device == device
    assert all(m.device == device for _, m in model.named_modules())
    _assert_lives_on(device, *model.parameters().values(), *model.grads().values())
    same = model.parameters()
    model.to(device)  # already there: the same arrays (an optimiser built on them stays valid)
    assert all(a is same[k] for k, a in model.parameters().items())
    state = model.state_dict()  # NumPy copies wherever the model lives
    assert all(type(v) is np.ndarray for v in state.values())
    model.to("cpu")
    assert all(type(v) is np.ndarray for v in list(model.parameters().values()) + list(model.grads().values()))
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_to_rejects_unknown_devices_and_host_only_layers():
    with pytest.raises(ValueError, match=r"device must be one of \['cpu', 'cuda'.*got 'gpu'"):
        nn.Linear(2, 3).to("gpu")
    name = "cuda_emulated" if E.BACKEND is not None else "cuda"
    model = nn.Sequential(rnn=nn.LSTM(3, 4, norm="layer"))
    with pytest.raises(ValueError, match=r"rnn cannot move to .*norm='layer'.*CPU core only"):
        model.to(name)
    assert model.device == "cpu"  # nothing moved
    from rnnkit.models import Seq2Seq

    with pytest.raises(ValueError, match="Seq2Seq runs on NumPy arrays only"):
        Seq2Seq(10, 10, hidden_size=4, embedding_dim=3, bos_id=1, eos_id=2).to(name)


def test_to_cuda_without_cuda_build_says_how_to_build(monkeypatch):
    monkeypatch.setattr(_device, "_cuda_backend", None)
    monkeypatch.setattr(_device, "cuda_module", lambda: None)
    layer = nn.Linear(2, 3)
    with pytest.raises(ImportError, match=r"device 'cuda' was asked for, but this rnnkit has no CUDA "
                                          r"backend.*RNNKIT_CUDA=ON"):
        layer.to("cuda")
    assert layer.device == "cpu"


@pytest.mark.parametrize("device", DEVICES)
def test_pickle_and_save_of_a_device_model(device, tmp_path):
    """A pickled device model holds NumPy arrays and its device name, and unpickles onto the
    device; rnnkit.save writes NumPy arrays and rnnkit.load gives a host model."""
    model = _classifier().to(device)
    ids, lengths = np.array([[1, 2, 3], [4, 5, 0]]), np.array([3, 2])
    want = _host(model.forward(_on(device, ids), lengths=lengths))
    model.backward(_on(device, np.ones_like(want)))  # leaves device arrays behind in the layers
    blob = pickle.dumps(model)
    other = pickle.loads(blob)
    assert other.device == device
    _assert_lives_on(device, *other.parameters().values())
    np.testing.assert_array_equal(_host(other.forward(_on(device, ids), lengths=lengths)), want)
    copied = copy.deepcopy(model)
    assert copied.device == device
    # the pickle holds NumPy arrays, not device memory
    state = model.__getstate__()
    assert all(type(v) is np.ndarray for v in state["_params"].values())
    rnnkit.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert all(type(f[k]) is np.ndarray for k in f.files)
    loaded = rnnkit.load(tmp_path / "m.npz")
    assert loaded.device == "cpu"
    np.testing.assert_allclose(loaded.forward(ids, lengths=lengths), want, rtol=0, atol=TOL_LAYER)


# ----------------------------------------------------------------------------- mixing

@pytest.mark.parametrize("device", DEVICES)
def test_mixing_host_and_device_raises_naming_the_argument(device):
    layer = nn.LSTM(3, 4, return_state=True, dtype=F64, seed=1)
    dev = copy.deepcopy(layer).to(device)
    x = np.zeros((2, 5, 3))
    with pytest.raises(TypeError, match=r"x is on the host \(NumPy\) but this layer's parameters are on"):
        dev.forward(x)
    with pytest.raises(TypeError, match=r"x is on .* but this layer's parameters are on the host"):
        layer.forward(_on(device, x))
    with pytest.raises(TypeError, match=r"initial_state\[0\]\[0\] is on the host"):
        dev.forward(_on(device, x), initial_state=[(np.zeros((2, 4)), None)])
    dev.forward(_on(device, x))
    with pytest.raises(TypeError, match="dy is on the host"):
        dev.backward((np.zeros((2, 5, 4)), None))
    emb = nn.Embedding(5, 3, dtype=F64).to(device)
    with pytest.raises(TypeError, match=r"ids are on the host \(NumPy\) but W is on"):
        emb.forward(np.array([[1, 2]]))
    with pytest.raises(IndexError, match=r"ids contains id 7 at position \(0, 1\)"):
        emb.forward(_on(device, np.array([[1, 7]])))
    logits = _on(device, np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"targets is on the host \(NumPy\) but the outputs are on"):
        cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(TypeError, match="mask is on the host"):
        cross_entropy(logits, _on(device, np.array([0, 1])), mask=np.array([True, False]))
    lin = nn.Linear(2, 2, dtype=F64)
    opt = SGD(lin.parameters(), lr=0.1)
    lin.to(device)
    with pytest.raises(TypeError, match=r"gradient of 'W' is on .* but the parameter is on the host.*"
                                        r"after this optimiser was built"):
        opt.step(lin.grads())
    model = nn.Sequential(fc=nn.Linear(2, 2, dtype=F64))
    trainer = Trainer(model, loss="mse", optimizer="sgd", lr=0.1, quiet=True)
    model.to(device)
    with pytest.raises(ValueError, match="moved with model.to.* after the Trainer was built"):
        trainer.fit((np.zeros((4, 2)), np.zeros((4, 2))))


# ----------------------------------------------------------------------------- losses, optimisers

@pytest.mark.parametrize("device", DEVICES)
def test_losses_on_device_match_host(device):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4, 5))
    t = rng.integers(0, 5, (3, 4))
    mask = rng.random((3, 4)) > 0.3
    tol = 0.0 if _exact(device) else TOL_LAYER
    cases = [
        (cross_entropy, (z, t), dict(mask=mask, label_smoothing=0.1)),
        (cross_entropy, (z, t), dict(ignore_index=2)),
        (binary_cross_entropy_with_logits, (z, (rng.random(z.shape) > 0.5) * 1.0), dict(pos_weight=2.0)),
        (mse, (z, rng.standard_normal(z.shape)), dict(mask=mask)),
    ]
    for fn, args, kw in cases:
        v, g, c = fn(*args, **kw)
        dkw = {k: _on(device, a) if isinstance(a, np.ndarray) else a for k, a in kw.items()}
        dv, dg, dc = fn(*(_on(device, a) for a in args), **dkw)
        assert isinstance(dv, float) and dc == c
        assert abs(dv - v) <= tol * max(1.0, abs(v))
        _assert_lives_on(device, dg)
        _assert_close(dg, g, tol, fn.__name__)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("opt_cls,kw", [
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=0.01, weight_decay=0.01)),
    (AdamW, dict(lr=0.01)),
    (RMSprop, dict(lr=0.01, momentum=0.5, weight_decay=0.01)),
], ids=["sgd", "adam", "adamw", "rmsprop"])
def test_optimizer_steps_on_device_match_host(device, opt_cls, kw):
    """Three steps with regularisation and clipping on the same gradients; the optimiser's
    state lives on the device, its state_dict is NumPy and loads back onto the device."""
    host = nn.Sequential(l0=nn.Linear(4, 3, dtype=F64, seed=1), out=nn.Linear(3, 2, dtype=F64, seed=2))
    dev = copy.deepcopy(host).to(device)
    reg = Regularizer(input_l1=1e-3, input_l2=1e-3, bias_l2=1e-2)
    h_opt, d_opt = opt_cls(host, **kw), opt_cls(dev, **kw)
    rng = np.random.default_rng(3)
    tol = 0.0 if _exact(device) else TOL_LAYER
    for step in range(3):
        for k, g in host.grads().items():
            g[...] = rng.standard_normal(g.shape)
            dev.grads()[k][...] = _on(device, g)
        pen = reg.add_gradients(host.parameters(), host.grads())
        dpen = reg.add_gradients(dev.parameters(), dev.grads())
        assert abs(dpen - pen) <= max(tol, 1e-15) * max(1.0, pen)
        if step == 1:
            clip_grad_value(host.grads(), 0.5)
            clip_grad_value(dev.grads(), 0.5)
        n, dn = clip_grad_norm(host.grads(), 1.0), clip_grad_norm(dev.grads(), 1.0)
        assert abs(dn - n) <= 1e-12 * n
        h_opt.step(host.grads())
        d_opt.step(dev.grads())
    for k, p in host.parameters().items():
        _assert_lives_on(device, dev.parameters()[k])
        _assert_close(dev.parameters()[k], p, max(tol, 1e-14), k)
    state = d_opt.state_dict()
    assert all(type(v) is np.ndarray for s in state["state"].values() for v in s.values())
    d_opt.load_state_dict(state)
    for s in d_opt.state.values():
        _assert_lives_on(device, *s.values())


# ----------------------------------------------------------------------------- training

def _text_data(n, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, n)
    ids = np.zeros((n, 8), np.int64)
    y = rng.integers(0, 3, n)
    for i, L in enumerate(lengths):
        ids[i, :L] = rng.integers(1, 12, L) + (y[i] * 3) % 11  # a learnable signal
    return np.minimum(ids, 11), y, lengths


@pytest.mark.parametrize("device", DEVICES)
def test_trainer_fit_on_device_matches_host(device, tmp_path):
    """Trainer.fit on a device model: the same losses, metrics, validation and final weights as
    on the host (the same shuffling and dropout masks: both come from host generators);
    evaluate and predict too; the checkpoint holds NumPy arrays and resumes on the device."""
    train, val = _text_data(40, 1), _text_data(12, 2)
    options = dict(loss="cross_entropy", optimizer="sgd", lr=0.05, quiet=True, metrics=["accuracy"],
                   optimizer_options=dict(momentum=0.9), clip_norm=5.0,
                   regularizer=Regularizer(recurrent_l2=1e-4), seed=3)
    host = _classifier()
    h_hist = Trainer(host, **options).fit(train, val, epochs=3, batch_size=8)
    model = _classifier().to(device)
    trainer = Trainer(model, checkpoint=tmp_path / "ck.npz", **options)
    d_hist = trainer.fit(train, val, epochs=3, batch_size=8)
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(d_hist.history[key], h_hist.history[key], rtol=TOL_TRAIN, atol=TOL_TRAIN,
                                   err_msg=key)
    for k, p in host.parameters().items():
        _assert_lives_on(device, model.parameters()[k])
        _assert_close(model.parameters()[k], p, TOL_TRAIN, k)
    pred = trainer.predict(val[0], val[2], batch_size=5)
    assert type(pred) is np.ndarray
    np.testing.assert_allclose(pred, Trainer(host, **options).predict(val[0], val[2], batch_size=5),
                               rtol=0, atol=TOL_TRAIN)
    with np.load(tmp_path / "ck.npz", allow_pickle=False) as f:
        assert f.files  # a checkpoint of NumPy arrays (read without unpickling)
    # resume: one more epoch from the checkpoint equals a run of four epochs on the host
    Trainer(host, **options).fit(train, val, epochs=1, batch_size=8)  # host: epoch 4 (fresh Trainer rng)
    resumed = Trainer(model, checkpoint=tmp_path / "ck.npz", **options)
    resumed.fit(train, val, epochs=4, batch_size=8, resume=True)
    _assert_lives_on(device, *model.parameters().values())
    assert len(resumed.history.epochs) == 4


@pytest.mark.parametrize("device", DEVICES)
def test_trainer_adam_and_mse_on_device(device):
    """A regression network with Adam and the MSE loss trains on the device and agrees with
    the host; Adam's m / sqrt(v) can turn a rounding-level gradient difference into a
    visible one, so this checks the loss curve, not bit equality."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5, 3))
    y = x.sum(axis=1)[:, :2]
    lengths = rng.integers(1, 6, 32)

    def net():
        return nn.Sequential(rnn=nn.GRU(3, 8, dtype=F64, seed=1), pool=nn.MeanPool(),
                             fc=nn.Linear(8, 2, dtype=F64, seed=2))

    h = Trainer(net(), loss="mse", lr=0.01, quiet=True).fit((x, y, lengths), epochs=4, batch_size=8)
    d = Trainer(net().to(device), loss="mse", lr=0.01, quiet=True).fit((x, y, lengths), epochs=4, batch_size=8)
    np.testing.assert_allclose(d.history["loss"], h.history["loss"], rtol=1e-6)
    assert d.history["loss"][-1] < d.history["loss"][0]


@pytest.mark.parametrize("device", DEVICES)
def test_readme_gpu_example_runs(device):
    """README's "Training on a GPU" block, on each device ("cuda" there)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("### Training on a GPU", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert '.to("cuda")' in block
    namespace = {}
    exec(compile(block.replace('"cuda"', repr(device)), "README.md", "exec"), namespace)
    assert type(namespace["logits"]) is np.ndarray and namespace["model"].device == "cpu"
