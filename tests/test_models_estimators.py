"""TextClassifier / BagOfWordsClassifier: the estimator protocol, learning on a toy corpus,
bad input, and scikit-learn interop (clone, Pipeline, cross_val_score) when it is installed."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.models import BagOfWordsClassifier, TextClassifier
from rnnkit.models.estimators import stratified_validation_split
from rnnkit.text import NotFittedError

_WORDS = {"sport": "goal match team player score league coach win ball referee".split(),
          "cooking": "oven recipe salt pepper bake flour sugar boil pan taste".split(),
          "space": "rocket orbit planet star moon launch nasa galaxy telescope astronaut".split()}
_FILLER = "the a of and to is it was with on very quite".split()


def corpus(n=90, seed=0):
    rng = np.random.default_rng(seed)
    labels = [list(_WORDS)[i % 3] for i in range(n)]
    texts = []
    for lab in labels:
        k = int(rng.integers(4, 12))
        words = [rng.choice(_WORDS[lab]) if rng.random() < 0.5 else rng.choice(_FILLER) for _ in range(k)]
        texts.append(" ".join(words))
    return texts, labels


FAST = dict(epochs=20, batch_size=16, embedding_dim=16, hidden_size=16)


@pytest.mark.parametrize("make", [lambda: TextClassifier(**FAST),
                                  lambda: BagOfWordsClassifier(epochs=15, batch_size=16, hidden_sizes=(16,))])
def test_estimators_learn_a_toy_topic_task(make):
    texts, labels = corpus()
    test_texts, test_labels = corpus(45, seed=1)
    est = make().fit(texts, labels)
    assert list(est.classes_) == ["cooking", "space", "sport"]
    proba = est.predict_proba(test_texts)
    assert proba.shape == (45, 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-9)
    assert set(est.predict(test_texts)) <= set(est.classes_)
    assert est.score(test_texts, test_labels) >= 0.85  # topic words decide: chance is 1/3


def test_same_seed_same_predictions():
    texts, labels = corpus(45)
    a = TextClassifier(**FAST).fit(texts, labels).predict_proba(texts)
    b = TextClassifier(**FAST).fit(texts, labels).predict_proba(texts)
    assert np.array_equal(a, b)


def test_params_protocol():
    est = TextClassifier(hidden_size=8, cell="lstm")
    params = est.get_params()
    assert params["hidden_size"] == 8 and params["cell"] == "lstm" and "epochs" in params
    assert est.set_params(epochs=3) is est and est.epochs == 3
    with pytest.raises(ValueError, match="invalid parameter"):
        est.set_params(depth=3)
    assert "cell='lstm'" in repr(est)
    assert not hasattr(est, "model_")  # __init__ only stores parameters


def test_bad_input():
    texts, labels = corpus(30)
    with pytest.raises(NotFittedError, match="not fitted"):
        TextClassifier().predict(texts)
    with pytest.raises(ValueError, match="30 texts but 29 labels"):
        TextClassifier(**FAST).fit(texts, labels[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        TextClassifier(**FAST).fit(texts, ["a"] * 30)
    with pytest.raises(TypeError, match="str"):
        TextClassifier(**FAST).fit("one text", ["a"])
    est = BagOfWordsClassifier(epochs=1).fit(texts, labels)
    with pytest.raises(ValueError, match="must match"):
        est.score(texts, labels[:-1])


def test_scikit_learn_interop():
    pytest.importorskip("sklearn")
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    texts, labels = corpus(60)
    est = TextClassifier(**FAST)
    assert is_classifier(est)
    c = clone(est)
    assert c.get_params() == est.get_params() and c is not est
    scores = cross_val_score(BagOfWordsClassifier(epochs=20, batch_size=16, hidden_sizes=(), lr=0.05), texts,
                             np.array(labels), cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    pipe = Pipeline([("lower", FunctionTransformer(lambda xs: [x.lower() for x in xs])), ("clf", TextClassifier(**FAST))])
    pipe.fit(texts, labels)
    assert pipe.score(texts, labels) > 0.85
    pipe.set_params(clf__epochs=1)
    assert pipe.named_steps["clf"].epochs == 1


@pytest.mark.parametrize("epochs", [0, -1, 1.5])
def test_estimators_reject_fits_that_learn_nothing(epochs):
    for est in (TextClassifier(epochs=epochs), BagOfWordsClassifier(epochs=epochs)):
        with pytest.raises(ValueError, match="epochs must be an int >= 1"):
            est.fit(["a b", "c d", "a c", "b d"], [0, 1, 0, 1])


# ---------------------------------------------------------------------- early stopping, random_state
def test_history_has_validation_metrics_and_best_weights_are_kept():
    texts, labels = corpus()
    est = TextClassifier(**FAST).fit(texts, labels)
    history = est.history_
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history.keys())
    best = int(np.argmin(history["val_loss"]))
    assert est.best_epoch_ == history.epochs[best] and est.n_iter_ == history.epochs[-1]


def test_early_stopping_restores_the_weights_of_the_best_epoch():
    # a learning rate this high makes the validation loss worsen after the first epochs, so
    # training stops early; the model must then be the one of the best epoch, not the last
    texts, labels = corpus()
    est = TextClassifier(**{**FAST, "lr": 0.3, "epochs": 30, "n_iter_no_change": 2}).fit(texts, labels)
    assert est.n_iter_ > est.best_epoch_
    _, val = stratified_validation_split(np.unique(labels, return_inverse=True)[1], 0.1, 0)
    val_texts, val_labels = [texts[i] for i in val], np.asarray(labels)[val]
    proba = est.predict_proba(val_texts)
    codes = np.searchsorted(est.classes_, val_labels)
    val_loss = -np.mean(np.log(proba[np.arange(len(val)), codes]))
    best = est.history_.epochs.index(est.best_epoch_)
    np.testing.assert_allclose(val_loss, est.history_["val_loss"][best], rtol=1e-4)


def test_without_early_stopping_every_text_trains_and_no_validation_is_reported():
    texts, labels = corpus(45)
    est = BagOfWordsClassifier(epochs=3, early_stopping=False).fit(texts, labels)
    assert "val_loss" not in est.history_ and est.n_iter_ == 3
    assert est.bow_.transform(texts).shape[0] == 45


def test_validation_split_is_stratified_and_deterministic():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    train, val = stratified_validation_split(y, 0.1, random_state=7)
    assert np.bincount(y[val]).tolist() == [5, 3, 2]
    assert np.intersect1d(train, val).size == 0 and np.union1d(train, val).size == 100
    again = stratified_validation_split(y, 0.1, random_state=7)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    other = stratified_validation_split(y, 0.1, random_state=8)
    assert not np.array_equal(val, other[1])
    # a class too small for 10% still gets one validation document, and never its only one
    y = np.repeat([0, 1, 2], [50, 3, 1])
    _, val = stratified_validation_split(y, 0.1, random_state=0)
    assert np.bincount(y[val], minlength=3).tolist() == [5, 1, 0]


@pytest.mark.parametrize("make", [lambda **kw: TextClassifier(**FAST, **kw),
                                  lambda **kw: BagOfWordsClassifier(epochs=5, **kw)])
def test_random_state_reproduces_and_varies(make):
    texts, labels = corpus(60)
    a = make(random_state=3).fit(texts, labels).predict_proba(texts)
    b = make(random_state=3).fit(texts, labels).predict_proba(texts)
    c = make(random_state=4).fit(texts, labels).predict_proba(texts)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_seed_is_a_deprecated_alias_of_random_state():
    texts, labels = corpus(45)
    with pytest.warns(FutureWarning, match="use random_state"):
        old = TextClassifier(**FAST, seed=3).fit(texts, labels).predict_proba(texts)
    new = TextClassifier(**FAST, random_state=3).fit(texts, labels).predict_proba(texts)
    assert np.array_equal(old, new)
    with pytest.raises(ValueError, match="random_state only"), pytest.warns(FutureWarning):
        TextClassifier(**FAST, seed=3, random_state=4).fit(texts, labels)


@pytest.mark.parametrize("name, value, message", [
    ("validation_fraction", 0.0, "validation_fraction must be a number in \\(0, 1\\)"),
    ("validation_fraction", 1.0, "validation_fraction must be a number in \\(0, 1\\)"),
    ("validation_fraction", "10%", "validation_fraction must be"),
    ("n_iter_no_change", 0, "n_iter_no_change must be an int >= 1"),
    ("early_stopping", "yes", "early_stopping must be True or False"),
    ("random_state", -1, "random_state must be None or an int >= 0"),
    ("random_state", 1.5, "random_state must be None or an int >= 0"),
    ("weight_decay", -1e-4, "weight_decay must be a finite number >= 0"),
])
def test_bad_training_parameters_name_themselves(name, value, message):
    for est in (TextClassifier(**{name: value}), BagOfWordsClassifier(**{name: value})):
        with pytest.raises(ValueError, match=message):
            est.fit(["a b", "c d", "a c", "b d"], [0, 1, 0, 1])


def test_bad_text_classifier_parameters():
    with pytest.raises(ValueError, match="init_embeddings must be 'corpus' or 'random'"):
        TextClassifier(init_embeddings="glove").fit(["a b", "c d"], [0, 1])
    texts, labels = ["a", "b", "c"], [0, 1, 2]  # one text per class: nothing to validate on
    with pytest.raises(ValueError, match="validation_fraction=0.1 leaves no validation documents"):
        TextClassifier(**FAST).fit(texts, labels)
    # one-word texts say nothing about how words co-occur: random embeddings, with a warning
    with pytest.warns(RuntimeWarning, match="using random embeddings"):
        est = TextClassifier(**FAST, early_stopping=False).fit(texts, labels)
    assert est.n_iter_ == FAST["epochs"]


def test_corpus_embeddings_start_from_the_training_texts():
    from rnnkit.text import cooccurrence_vectors

    texts, labels = corpus()
    est = TextClassifier(**{**FAST, "epochs": 1, "lr": 1e-12}).fit(texts, labels)
    train, _ = stratified_validation_split(np.unique(labels, return_inverse=True)[1], 0.1, 0)
    expected = cooccurrence_vectors([texts[i] for i in train], est.vocab_, FAST["embedding_dim"])
    np.testing.assert_allclose(est.model_.embed.W, expected, atol=1e-6)
    random = TextClassifier(**{**FAST, "epochs": 1, "lr": 1e-12}, init_embeddings="random").fit(texts, labels)
    assert not np.allclose(random.model_.embed.W, expected, atol=1e-3)


def test_clone_keeps_the_new_parameters():
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    est = TextClassifier(validation_fraction=0.2, early_stopping=False, n_iter_no_change=7, random_state=5,
                         init_embeddings="random", weight_decay=1e-3)
    assert clone(est).get_params() == est.get_params()
    assert "random_state=5" in repr(est) and "seed" not in repr(est)
