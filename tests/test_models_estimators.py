"""TextClassifier / BagOfWordsClassifier: the estimator protocol, learning on a toy corpus,
bad input, and scikit-learn interop (clone, Pipeline, cross_val_score) when it is installed."""
from __future__ import annotations

import numpy as np
import pytest

from rnnkit.models import BagOfWordsClassifier, TextClassifier
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


FAST = dict(epochs=8, batch_size=16, embedding_dim=16, hidden_size=16)


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
    est = TextClassifier(hidden_size=8, cell="gru")
    params = est.get_params()
    assert params["hidden_size"] == 8 and params["cell"] == "gru" and "epochs" in params
    assert est.set_params(epochs=3) is est and est.epochs == 3
    with pytest.raises(ValueError, match="invalid parameter"):
        est.set_params(depth=3)
    assert "cell='gru'" in repr(est)
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
