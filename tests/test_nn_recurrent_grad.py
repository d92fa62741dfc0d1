"""Whole-model float64 finite-difference gradient checks of stacked (2-layer) bidirectional
RNN/LSTM/GRU with every option (see test_nn_gradcheck.py for how randomness is fixed and why the
tolerance is what it is)."""
import numpy as np
import pytest

import rnnkit.nn as nn
from test_nn_gradcheck import check_module

T, B, I, H = 4, 4, 3, 3
# 0 < lengths <= T, every step keeps >= 2 valid rows (a batch-norm statistic over one row is
# constant, which is fine, but we want the per-step statistics to carry gradient)
LENGTHS = np.array([4, 2, 3, 4])
CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

CONFIGS = {
    "concat": dict(),
    "sum": dict(merge="sum"),
    "mul": dict(merge="mul"),
    "ave": dict(merge="ave"),
    "dropout": dict(dropout=0.4),
    "recurrent_dropout": dict(recurrent_dropout=0.4),
    "residual": dict(skip="residual", merge="sum"),  # I == H: residual in both layers
    "residual_concat": dict(skip="residual"),  # only layer 1 has matching widths
    "dense": dict(skip="dense", dropout=0.3),
    "layer_norm": dict(norm="layer", recurrent_dropout=0.3),
    "batch_norm": dict(norm="batch", recurrent_dropout=0.3),
    "batch_first": dict(batch_first=True),
    "last_step": dict(return_sequences=False),
    "everything": dict(skip="dense", dropout=0.3, recurrent_dropout=0.3, norm="layer",
                       merge="mul", batch_first=True),
}


def generic_point(model, seed=11):
    """Moves biases and gains off their initial values (zero biases make tanh(0) = 0 states,
    so several rows can share h = 0 exactly and a batch-norm variance is 0: a legitimate but
    degenerate point where finite differences lose accuracy)."""
    rng = np.random.default_rng(seed)
    for name, p in model.parameters().items():
        kind = name.rsplit(".", 1)[-1]
        if kind in ("b", "bh", "beta"):
            p += 0.3 * rng.standard_normal(p.shape)
        elif kind == "gamma":
            p *= 1 + 0.3 * rng.random(p.shape)
        elif kind == "peepholes":  # they start at zero, where the cell is the plain LSTM
            p += 0.5 * rng.standard_normal(p.shape)
    return model


def make(kind, **kw):
    model = CLASSES[kind](I, H, 2, bidirectional=True, dtype=np.float64, seed=3, **kw)
    return generic_point(model)


def inputs(batch_first=False, seed=5):
    x = np.random.default_rng(seed).standard_normal((T, B, I))
    return np.ascontiguousarray(x.transpose(1, 0, 2)) if batch_first else x


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", list(CLASSES))
def test_stacked_bidirectional_gradients(kind, config):
    kw = CONFIGS[config]
    model = make(kind, **kw)
    x = inputs(kw.get("batch_first", False))
    slow = kw.get("norm") is not None
    n = check_module(model, x, fwd_kwargs=dict(lengths=LENGTHS, training=True),
                     max_per_param=3 if slow else 6, max_x=8 if slow else 12)
    assert n > 50


@pytest.mark.parametrize("kind", list(CLASSES))
def test_batch_norm_inference_gradients(kind):
    """Inference mode uses the running statistics: train once to move them, then check."""
    model = make(kind, norm="batch")
    x = inputs()
    model.forward(x, lengths=LENGTHS, training=True)
    assert not np.allclose(model.l0.fwd.running_mean_x, 0)
    check_module(model, x, fwd_kwargs=dict(lengths=LENGTHS, training=False), max_per_param=3)


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("norm", [None, "layer"])
def test_states_in_and_out(kind, norm):
    """return_state: gradients through the final states and into given initial states."""
    model = make(kind, return_state=True, norm=norm, return_sequences=False)
    rng = np.random.default_rng(9)
    init = []
    extra = {}
    for k in range(4):
        if kind == "lstm":
            h, c = rng.standard_normal((B, H)) * 0.5, rng.standard_normal((B, H)) * 0.5
            init.append((h, c))
            extra[f"h0[{k}]"] = (h, lambda m, k=k: m.dinitial_state[k][0])
            extra[f"c0[{k}]"] = (c, lambda m, k=k: m.dinitial_state[k][1])
        else:
            h = rng.standard_normal((B, H)) * 0.5
            init.append(h)
            extra[f"h0[{k}]"] = (h, lambda m, k=k: m.dinitial_state[k])
    check_module(model, inputs(), fwd_kwargs=dict(lengths=LENGTHS, training=True,
                                                  initial_state=init),
                 max_per_param=3, extra_inputs=extra)


def test_relu_rnn_gradients():
    model = generic_point(nn.RNN(I, H, 2, nonlinearity="relu", bidirectional=True, skip="dense",
                                 dtype=np.float64, seed=1))
    check_module(model, inputs(), fwd_kwargs=dict(lengths=LENGTHS, training=True))


def test_gru_reset_before():
    model = generic_point(nn.GRU(I, H, 2, bidirectional=True, linear_before_reset=False,
                                 dtype=np.float64, seed=2))
    check_module(model, inputs(), fwd_kwargs=dict(lengths=LENGTHS, training=True))


# LSTM with a projection (h and outputs P = 2 wide, c H = 3 wide) and with peepholes, through
# the options that route their outputs and states differently
LSTM_VARIANTS = {"proj": dict(proj_size=2), "peepholes": dict(peepholes=True),
                 "proj_peepholes": dict(proj_size=2, peepholes=True)}


@pytest.mark.parametrize("config", ["concat", "sum", "recurrent_dropout", "residual_concat",
                                    "dense", "batch_first", "last_step"])
@pytest.mark.parametrize("variant", list(LSTM_VARIANTS))
def test_projection_and_peephole_lstm_gradients(variant, config):
    kw = CONFIGS[config]
    model = make("lstm", **LSTM_VARIANTS[variant], **kw)
    n = check_module(model, inputs(kw.get("batch_first", False)),
                     fwd_kwargs=dict(lengths=LENGTHS, training=True))
    assert n > 50


@pytest.mark.parametrize("variant", list(LSTM_VARIANTS))
def test_projection_and_peephole_lstm_states_in_and_out(variant):
    model = make("lstm", return_state=True, return_sequences=False, **LSTM_VARIANTS[variant])
    S = model.state_size
    assert S == LSTM_VARIANTS[variant].get("proj_size", H)
    rng = np.random.default_rng(9)
    init, extra = [], {}
    for k in range(4):
        h, c = rng.standard_normal((B, S)) * 0.5, rng.standard_normal((B, H)) * 0.5
        init.append((h, c))
        extra[f"h0[{k}]"] = (h, lambda m, k=k: m.dinitial_state[k][0])
        extra[f"c0[{k}]"] = (c, lambda m, k=k: m.dinitial_state[k][1])
    check_module(model, inputs(), fwd_kwargs=dict(lengths=LENGTHS, training=True,
                                                  initial_state=init),
                 max_per_param=3, extra_inputs=extra)
