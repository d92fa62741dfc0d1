"""Pickling and deep-copying layers and fitted models after a forward: a pickled layer is its
parameters, buffers and options; what the last forward kept for backward (the core's handles)
stays behind."""
import copy
import pickle

import numpy as np
import pytest

import rnnkit.nn as nn
from rnnkit import _core
from rnnkit.models import TextClassifier

T, B, I, H = 4, 3, 5, 6
CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _round_trips(obj):
    return [("pickle", pickle.loads(pickle.dumps(obj))), ("deepcopy", copy.deepcopy(obj))]


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("kind", list(CLASSES))
def test_layer_pickles_and_deep_copies_after_a_forward(kind, training):
    layer = CLASSES[kind](I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=3, batch_first=False)
    x = np.random.default_rng(0).standard_normal((T, B, I))  # time-major, the layers' default
    lengths = np.array([4, 2, 3])
    y = layer.forward(x, lengths=lengths, training=training)
    for how, twin in _round_trips(layer):
        np.testing.assert_array_equal(twin.forward(x, lengths=lengths), layer.forward(x, lengths=lengths),
                                      err_msg=how)
        assert list(twin.state_dict()) == list(layer.state_dict())
        for name, value in layer.state_dict().items():
            np.testing.assert_array_equal(twin.state_dict()[name], value, err_msg=f"{how} {name}")
        # the copy trains on its own: a training forward and backward of the copy work and
        # leave the original's gradients alone
        before = {k: g.copy() for k, g in layer.grads().items()}
        twin.zero_grad()
        out = twin.forward(x, lengths=lengths, training=True)
        twin.backward(np.ones_like(out))
        assert any(np.any(g != 0) for g in twin.grads().values())
        for k, g in layer.grads().items():
            np.testing.assert_array_equal(g, before[k])
    if training:  # the original still holds its own handles and can run its backward
        layer.backward(np.ones_like(y))


def test_forward_handle_refuses_pickling_with_a_clear_message():
    x = np.zeros((T, B, I))
    _, _, _, handle = _core.forward("rnn_tanh", x, None, None, np.zeros((I, H)), np.zeros((H, H)),
                                    np.zeros(H), None, None, False, None, True, [], True)
    with pytest.raises(TypeError, match="ForwardHandle .* cannot be pickled"):
        pickle.dumps(handle)


def test_fitted_text_classifier_round_trips_with_identical_predictions():
    rng = np.random.default_rng(0)
    words = {"a": "goal match team ball".split(), "b": "oven salt bake flour".split()}
    labels = [("a", "b")[i % 2] for i in range(40)]
    texts = [" ".join(rng.choice(words[lab], size=5)) for lab in labels]
    est = TextClassifier(epochs=2, batch_size=8, embedding_dim=8, hidden_size=8).fit(texts, labels)
    want = est.predict_proba(texts)
    for how, twin in _round_trips(est):
        np.testing.assert_array_equal(twin.predict_proba(texts), want, err_msg=how)
        assert list(twin.predict(texts)) == list(est.predict(texts))
