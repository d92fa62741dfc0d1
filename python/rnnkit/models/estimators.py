"""scikit-learn style estimators on raw texts: ``TextClassifier`` (rnnkit.text + a recurrent
``SequenceClassifier``) and the bag-of-words baseline ``BagOfWordsClassifier`` (``BagOfWords``
-> ``MLPClassifier``).

They follow scikit-learn's conventions without importing it: ``__init__`` only stores its
arguments, ``get_params`` / ``set_params`` read them from the signature, fitted attributes end
with ``_`` (``classes_``, ``vocab_`` / ``bow_``, ``model_``, ``history_``), and
``__sklearn_tags__`` (scikit-learn >= 1.6) / ``_estimator_type`` mark them as classifiers, so
``sklearn.base.clone``, ``Pipeline`` and ``cross_val_score`` work when scikit-learn is installed.
Labels may be any sortable values (strings, ints); ``predict`` returns them.
"""
from __future__ import annotations

import inspect

import numpy as np

from .._checks import check_positive_int

from ..text import BagOfWords, NotFittedError, Vocabulary, to_sequences
from ..text.vocabulary import _check_texts
from ..train.losses import softmax
from ..train.trainer import Trainer, predict
from .networks import MLPClassifier, SequenceClassifier

__all__ = ["TextClassifier", "BagOfWordsClassifier"]


class _TextEstimator:
    _estimator_type = "classifier"

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}

    def set_params(self, **params):
        valid = inspect.signature(type(self)).parameters
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {k: p.default for k, p in inspect.signature(type(self)).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v is not defaults[k] and v != defaults[k]]
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags(one_d_array=True, two_d_array=False,
                                                                           string=True))

    # ------------------------------------------------------------------ shared pieces
    def _labels(self, texts, labels):
        texts = _check_texts(texts)
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(f"labels must be 1-D (one label per text), got shape {labels.shape}")
        if len(labels) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(labels)} labels; they must match")
        if not texts:
            raise ValueError("texts is empty: need at least one text to fit")
        classes, y = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"need at least 2 classes to fit a classifier, got {classes.tolist()}")
        return texts, classes, y.astype(np.int64)

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(texts, labels) first")

    def _trainer(self, model):
        # an estimator's fit must learn something (the Trainer itself allows epochs=0: resume)
        check_positive_int(self.epochs, "epochs")
        return Trainer(model, loss="cross_entropy", optimizer=self.optimizer, lr=self.lr,
                       clip_norm=self.clip_norm, metrics=["accuracy"], seed=self.seed, quiet=not self.verbose)

    def predict(self, texts):
        """The most probable label of each text."""
        self._check_fitted()
        return self.classes_[np.argmax(self.predict_proba(texts), axis=1)]

    def score(self, texts, labels) -> float:
        """Accuracy of ``predict(texts)`` against ``labels``."""
        labels = np.asarray(labels)
        pred = self.predict(texts)
        if len(pred) != len(labels):
            raise ValueError(f"got {len(pred)} texts but {len(labels)} labels; they must match")
        return float(np.mean(pred == labels))


class TextClassifier(_TextEstimator):
    """Raw texts -> labels with a recurrent network.

    Pipeline: ``Vocabulary.from_texts`` (``min_freq``, ``max_vocab``, ``stop_words``,
    ``lowercase``) -> ``to_sequences`` (``max_len``; longer texts keep their first ``max_len``
    tokens) -> ``SequenceClassifier`` (``cell``, ``embedding_dim``, ``hidden_size``,
    ``num_layers``, ``bidirectional``, ``pooling``, ``dropout``) trained with the Trainer
    (``epochs``, ``batch_size``, ``optimizer``, ``lr``, ``clip_norm``, ``seed``; ``verbose``
    shows the progress bar). ``history_`` is the training History.
    """

    def __init__(self, *, cell="lstm", embedding_dim=64, hidden_size=64, num_layers=1, bidirectional=False,
                 pooling="mean", dropout=0.0, max_len=200, min_freq=1, max_vocab=20000, stop_words=None,
                 lowercase=True, epochs=10, batch_size=32, optimizer="adam", lr=3e-3, clip_norm=5.0,
                 seed=0, verbose=False):
        self.cell = cell
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.dropout = dropout
        self.max_len = max_len
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.stop_words = stop_words
        self.lowercase = lowercase
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.seed = seed
        self.verbose = verbose

    def fit(self, texts, labels):
        texts, self.classes_, y = self._labels(texts, labels)
        self.vocab_ = Vocabulary.from_texts(texts, min_freq=self.min_freq, max_size=self.max_vocab,
                                            stop_words=self.stop_words, lowercase=self.lowercase)
        ids, lengths = to_sequences(texts, self.vocab_, max_len=self.max_len)
        self.model_ = SequenceClassifier(len(self.vocab_), len(self.classes_), embedding_dim=self.embedding_dim,
                                         hidden_size=self.hidden_size, num_layers=self.num_layers,
                                         cell=self.cell, bidirectional=self.bidirectional, pooling=self.pooling,
                                         dropout=self.dropout, seed=self.seed)
        self.history_ = self._trainer(self.model_).fit((ids, y, lengths), epochs=self.epochs,
                                                       batch_size=self.batch_size)
        return self

    def predict_proba(self, texts):
        """(N, n_classes) class probabilities, columns in ``classes_`` order."""
        self._check_fitted()
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        ids, lengths = to_sequences(texts, self.vocab_, max_len=self.max_len)
        return softmax(predict(self.model_, ids, lengths, batch_size=128).astype(np.float64))


class BagOfWordsClassifier(_TextEstimator):
    """The feed-forward baseline: ``BagOfWords`` (``weighting`` "tfidf" | "count" | "binary",
    ``ngram_range``, ``min_df``, ``max_features``, ``stop_words``) -> ``MLPClassifier``
    (``hidden_sizes``, ``dropout``; ``hidden_sizes=()`` is multinomial logistic regression),
    trained with the same Trainer as ``TextClassifier`` so the two compare like for like."""

    def __init__(self, *, hidden_sizes=(64,), dropout=0.0, weighting="tfidf", ngram_range=(1, 1), min_df=1,
                 max_features=20000, stop_words=None, epochs=10, batch_size=32, optimizer="adam", lr=3e-3,
                 clip_norm=5.0, seed=0, verbose=False):
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.weighting = weighting
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_features = max_features
        self.stop_words = stop_words
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.clip_norm = clip_norm
        self.seed = seed
        self.verbose = verbose

    def fit(self, texts, labels):
        texts, self.classes_, y = self._labels(texts, labels)
        self.bow_ = BagOfWords(weighting=self.weighting, ngram_range=self.ngram_range, min_df=self.min_df,
                               max_features=self.max_features, stop_words=self.stop_words, dtype=np.float32)
        X = self.bow_.fit_transform(texts)
        self.model_ = MLPClassifier(X.shape[1], len(self.classes_), hidden_sizes=tuple(self.hidden_sizes),
                                    dropout=self.dropout, seed=self.seed)
        self.history_ = self._trainer(self.model_).fit((X, y), epochs=self.epochs, batch_size=self.batch_size)
        return self

    def predict_proba(self, texts):
        self._check_fitted()
        X = self.bow_.transform(_check_texts(texts))
        if X.shape[0] == 0:
            return np.zeros((0, len(self.classes_)))
        return softmax(predict(self.model_, X, batch_size=256).astype(np.float64))
