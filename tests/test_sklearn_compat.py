"""rnnkit's estimators inside scikit-learn's model-selection tools: clone, cross_validate and
GridSearchCV, with n_jobs=2 so that the estimators travel to worker processes and back
(pickled by joblib). Skipped without scikit-learn."""
import numpy as np
import pytest

from rnnkit.models import BagOfWordsClassifier, TextClassifier

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_validate  # noqa: E402


def _texts_and_labels(n=24):
    rng = np.random.default_rng(0)
    words = {"a": "goal match team ball".split(), "b": "oven salt bake flour".split()}
    labels = [("a", "b")[i % 2] for i in range(n)]
    return [" ".join(rng.choice(words[lab], size=5)) for lab in labels], labels


SMALL = {"text": lambda: TextClassifier(epochs=1, batch_size=8, embedding_dim=4, hidden_size=4),
         "bow": lambda: BagOfWordsClassifier(hidden_sizes=(4,), epochs=1, batch_size=8)}


@pytest.mark.parametrize("kind", list(SMALL))
def test_clone_gives_an_unfitted_estimator_with_the_same_parameters(kind):
    texts, labels = _texts_and_labels()
    est = SMALL[kind]().fit(texts, labels)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(twin))
    np.testing.assert_array_equal(twin.fit(texts, labels).predict_proba(texts), est.predict_proba(texts))


@pytest.mark.parametrize("kind", list(SMALL))
def test_cross_validate_in_two_worker_processes(kind):
    texts, labels = _texts_and_labels()
    result = cross_validate(SMALL[kind](), texts, labels, cv=2, n_jobs=2, return_estimator=True)
    assert len(result["test_score"]) == 2 and np.all(np.isfinite(result["test_score"]))
    for est in result["estimator"]:  # fitted in a worker, returned by pickle
        assert est.predict_proba(texts).shape == (len(texts), 2)


def test_grid_search_in_two_worker_processes():
    texts, labels = _texts_and_labels()
    search = GridSearchCV(SMALL["text"](), {"hidden_size": [2, 4]}, cv=2, n_jobs=2).fit(texts, labels)
    assert search.best_params_["hidden_size"] in (2, 4)
    assert len(search.predict(texts)) == len(texts)
