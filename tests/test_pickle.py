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


# ---------------------------------------------------------------------------------------------
# every stateful rnnkit object survives pickle, copy.deepcopy and (when installed) joblib, the
# three ways scikit-learn and its parallel back ends copy estimators and their parts
def _all_round_trips(obj, tmp_path):
    trips = _round_trips(obj)
    try:
        import joblib
    except ImportError:  # joblib comes with scikit-learn; pickle covers what it does without it
        return trips
    path = tmp_path / "obj.joblib"
    joblib.dump(obj, path)
    return trips + [("joblib", joblib.load(path))]


def _texts_and_labels(n=24):
    rng = np.random.default_rng(0)
    words = {"a": "goal match team ball".split(), "b": "oven salt bake flour".split()}
    labels = [("a", "b")[i % 2] for i in range(n)]
    return [" ".join(rng.choice(words[lab], size=5)) for lab in labels], labels


def test_vocabulary_round_trips(tmp_path):
    from rnnkit.text import Vocabulary

    texts, _ = _texts_and_labels()
    vocab = Vocabulary.from_texts(texts + ["rare"], min_freq=1)
    for how, twin in _all_round_trips(vocab, tmp_path):
        assert twin.tokens == vocab.tokens and twin.counts == vocab.counts, how
        assert twin.encode_text("goal oven unseen") == vocab.encode_text("goal oven unseen"), how


@pytest.mark.parametrize("fitted", [True, False], ids=["fitted", "unfitted"])
def test_bag_of_words_round_trips(fitted, tmp_path):
    from rnnkit.text import BagOfWords

    texts, _ = _texts_and_labels()
    bow = BagOfWords(ngram_range=(1, 2))
    if fitted:
        bow.fit(texts)
    for how, twin in _all_round_trips(bow, tmp_path):
        if fitted:
            np.testing.assert_array_equal(_dense(twin.transform(texts[:5])), _dense(bow.transform(texts[:5])),
                                          err_msg=how)
        else:  # the copy fits like the original would have
            np.testing.assert_array_equal(_dense(twin.fit_transform(texts)),
                                          _dense(BagOfWords(ngram_range=(1, 2)).fit_transform(texts)),
                                          err_msg=how)


def _dense(matrix):
    return matrix.toarray() if hasattr(matrix, "toarray") else matrix


@pytest.mark.parametrize("name", ["adam", "sgd"])
def test_optimiser_round_trips_after_steps_and_continues_identically(name, tmp_path):
    from rnnkit.train.optim import get_optimizer

    rng = np.random.default_rng(1)
    params = {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    options = {"momentum": 0.9} if name == "sgd" else {}
    opt = get_optimizer(name, params, 0.05, **options)
    grads = [{k: rng.standard_normal(v.shape) for k, v in params.items()} for _ in range(4)]
    for g in grads[:2]:
        opt.step(g)
    twins = _all_round_trips(opt, tmp_path)
    for g in grads[2:]:
        opt.step(g)
    for how, twin in twins:
        for g in grads[2:]:
            twin.step(g)
        assert twin.steps == opt.steps, how
        for k in params:  # the copy updates its own copy of the parameters, the same way
            assert twin.params[k] is not opt.params[k], how
            np.testing.assert_array_equal(twin.params[k], opt.params[k], err_msg=f"{how} {k}")


@pytest.mark.parametrize("make", [lambda s: s.StepLR(2, gamma=0.5), lambda s: s.CosineLR(5),
                                  lambda s: s.ReduceLROnPlateau(patience=1, factor=0.5)],
                         ids=["step", "cosine", "plateau"])
def test_schedule_round_trips_and_continues_identically(make, tmp_path):
    from rnnkit.train import schedules
    from rnnkit.train.optim import SGD

    schedule = make(schedules)
    schedule.start(SGD({"w": np.zeros(2)}, 0.1))
    metrics = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]
    for m in metrics[:3]:
        schedule.step(m)
    twins = _all_round_trips(schedule, tmp_path)
    want = [schedule.step(m) for m in metrics[3:]]
    for how, twin in twins:
        assert [twin.step(m) for m in metrics[3:]] == want, how


def test_history_round_trips(tmp_path):
    from rnnkit.train import History

    history = History()
    history.append(1, {"loss": 1.5, "val_loss": 1.7})
    history.append(2, {"loss": 1.2, "val_loss": 1.6})
    history.stopped_early = True
    for how, twin in _all_round_trips(history, tmp_path):
        assert twin.to_dict() == history.to_dict(), how


def test_fitted_forecaster_round_trips_with_identical_predictions(tmp_path):
    from rnnkit.models import Forecaster

    series = np.sin(np.arange(60) / 4.0)
    est = Forecaster(input_len=6, horizon=2, hidden_size=4, epochs=1, batch_size=16).fit(series)
    want = est.predict(series[-6:], steps=4)
    for how, twin in _all_round_trips(est, tmp_path):
        np.testing.assert_array_equal(twin.predict(series[-6:], steps=4), want, err_msg=how)


@pytest.mark.parametrize("kind", ["text", "bow"])
def test_fitted_estimators_round_trip_through_every_copier(kind, tmp_path):
    from rnnkit.models import BagOfWordsClassifier

    texts, labels = _texts_and_labels()
    est = (TextClassifier(epochs=1, batch_size=8, embedding_dim=4, hidden_size=4) if kind == "text"
           else BagOfWordsClassifier(hidden_sizes=(4,), epochs=1, batch_size=8)).fit(texts, labels)
    want = est.predict_proba(texts)
    for how, twin in _all_round_trips(est, tmp_path):
        np.testing.assert_array_equal(twin.predict_proba(texts), want, err_msg=how)


def test_fitted_network_round_trips_through_every_copier(tmp_path):
    from rnnkit.models import SequenceClassifier

    x = np.random.default_rng(0).integers(1, 10, size=(4, 5))
    model = SequenceClassifier(10, 3, embedding_dim=4, hidden_size=4, seed=0)
    want = model.forward(x)
    for how, twin in _all_round_trips(model, tmp_path):
        np.testing.assert_array_equal(twin.forward(x), want, err_msg=how)
