"""scikit-learn style estimators on raw texts: ``TextClassifier`` (rnnkit.text + a recurrent
``SequenceClassifier``) and the bag-of-words baseline ``BagOfWordsClassifier`` (``BagOfWords``
-> ``MLPClassifier``).

They follow scikit-learn's conventions without importing it: ``__init__`` only stores its
arguments, ``get_params`` / ``set_params`` read them from the signature, fitted attributes end
with ``_`` (``classes_``, ``vocab_`` / ``bow_``, ``model_``, ``history_``, ``best_epoch_``,
``n_iter_``), and
``__sklearn_tags__`` (scikit-learn >= 1.6) / ``_estimator_type`` mark them as classifiers, so
``sklearn.base.clone``, ``Pipeline`` and ``cross_val_score`` work when scikit-learn is installed.
Labels may be any sortable values (strings, ints); ``predict`` returns them.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np

from .._checks import check_positive_int

from ..text import BagOfWords, NotFittedError, Vocabulary, cooccurrence_vectors, to_sequences
from ..text.vocabulary import _check_texts
from ..train.losses import softmax
from ..train.regularizers import Regularizer
from ..train.trainer import EarlyStopping, Trainer, predict
from .networks import MLPClassifier, SequenceClassifier

__all__ = ["TextClassifier", "BagOfWordsClassifier", "stratified_validation_split"]


_SEED_DEPRECATED = "seed is deprecated and will be removed in the next release; use random_state"


def _check_fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _check_non_negative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def stratified_validation_split(y, fraction: float, random_state):
    """Indices ``(train, val)`` of class indices ``y``: ``round(fraction * n_c)`` documents of
    every class c go to validation, at least one when the class has two or more (so that
    every class is seen when choosing the epoch) and never the only one (so that the model
    sees every class). Drawn with ``default_rng(random_state)``; both sorted."""
    rng = np.random.default_rng(random_state)
    train, val = [], []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n_val = min(max(int(round(fraction * members.size)), 1), members.size - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


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

    def _resolved_random_state(self):
        """``random_state``, or the deprecated ``seed`` when that was given (with a FutureWarning)."""
        if self.seed is not None:
            warnings.warn(_SEED_DEPRECATED, FutureWarning, stacklevel=3)
            if self.random_state is not None and self.random_state != 0:
                raise ValueError("give random_state only (seed is its deprecated alias), not both")
            state = self.seed
        else:
            state = self.random_state
        if state is not None and (isinstance(state, bool) or not isinstance(state, (int, np.integer)) or state < 0):
            raise ValueError(f"random_state must be None or an int >= 0, got {state!r}")
        return None if state is None else int(state)

    def _check_training_params(self):
        """Validates the training parameters both estimators share before any work is done."""
        # an estimator's fit must learn something (the Trainer itself allows epochs=0: resume)
        check_positive_int(self.epochs, "epochs")
        check_positive_int(self.n_iter_no_change, "n_iter_no_change")
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise ValueError(f"early_stopping must be True or False, got {self.early_stopping!r}")
        if self.early_stopping:
            _check_fraction(self.validation_fraction, "validation_fraction")
        _check_non_negative(self.weight_decay, "weight_decay")

    def _split(self, y, random_state):
        """Training and validation row indices: all rows for training without early stopping."""
        if not self.early_stopping:
            return np.arange(len(y)), None
        train, val = stratified_validation_split(y, self.validation_fraction, random_state)
        if val.size == 0:
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no validation documents "
                             f"among {len(y)}: give more texts or set early_stopping=False")
        return train, val

    def _train(self, model, train_data, val_data, random_state):
        """Trains ``model``; with early stopping, stops when the validation loss has not improved
        for ``n_iter_no_change`` epochs and keeps the weights of the best epoch."""
        stopper = None
        if self.early_stopping:
            stopper = EarlyStopping(monitor="val_loss", patience=self.n_iter_no_change, restore_best=True)
        # weight decay as an L2 penalty on every weight matrix (embedding included), not on biases
        decay = self.weight_decay / 2  # the penalty is l2 * sum(w**2): its gradient is weight_decay * w
        regularizer = Regularizer(input_l2=decay, recurrent_l2=decay, other_l2=decay) if decay else None
        trainer = Trainer(model, loss="cross_entropy", optimizer=self.optimizer, lr=self.lr,
                          regularizer=regularizer, clip_norm=self.clip_norm, metrics=["accuracy"],
                          early_stopping=stopper, seed=random_state, quiet=not self.verbose)
        history = trainer.fit(train_data, val_data, epochs=self.epochs, batch_size=self.batch_size)
        # the Trainer has put back the best epoch's weights (restore_best), stopped early or not
        self.best_epoch_ = history.epochs[-1] if stopper is None else stopper.best_epoch
        self.n_iter_ = history.epochs[-1]
        return history

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


_EARLY_STOPPING_DOC = """\
    Early stopping (as scikit-learn's MLP): with ``early_stopping=True`` a stratified
    ``validation_fraction`` of the training texts (drawn with ``random_state``) is held out,
    training stops once the validation loss has not improved for ``n_iter_no_change`` epochs
    (``epochs`` is the most it runs), and the model keeps the weights of its best epoch
    (``best_epoch_``; ``n_iter_`` epochs ran). ``history_`` is the training History, with
    ``val_loss`` / ``val_accuracy`` when there was a validation split. ``weight_decay``: L2
    penalty on the weight matrices (gradient ``weight_decay * w``), not on biases.
    ``random_state`` seeds initialisation, shuffling, dropout and the split (``seed`` is its
    deprecated alias)."""


class TextClassifier(_TextEstimator):
    __doc__ = """Raw texts -> labels with a recurrent network.

    Pipeline: ``Vocabulary.from_texts`` (``min_freq``, ``max_vocab``, ``stop_words``,
    ``lowercase``) -> ``to_sequences`` (``max_len``; longer texts keep their first ``max_len``
    tokens) -> ``SequenceClassifier`` (``cell``, ``embedding_dim``, ``hidden_size``,
    ``num_layers``, ``bidirectional``, ``pooling``, ``dropout``) trained with the Trainer
    (``epochs``, ``batch_size``, ``optimizer``, ``lr``, ``clip_norm``; ``verbose`` shows the
    progress bar).

    ``init_embeddings="corpus"`` starts the embedding layer from word vectors of the training
    texts themselves (``rnnkit.text.cooccurrence_vectors``: PPMI of co-occurrences within
    ``embedding_window`` tokens, truncated SVD), so that words used alike start alike; with
    ``"random"`` it starts from noise. The defaults are chosen for small corpora (a few
    thousand short documents): see docs/models.md for the measurements behind them.

""" + _EARLY_STOPPING_DOC

    def __init__(self, *, cell="gru", embedding_dim=64, hidden_size=64, num_layers=1, bidirectional=True,
                 pooling="max", dropout=0.3, init_embeddings="corpus", embedding_window=5, max_len=200,
                 min_freq=1, max_vocab=20000, stop_words=None, lowercase=True, epochs=30, batch_size=32,
                 optimizer="adam", lr=3e-3, weight_decay=1e-4, clip_norm=5.0, early_stopping=True,
                 validation_fraction=0.1, n_iter_no_change=3, random_state=0, seed=None, verbose=False):
        self.cell = cell
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.dropout = dropout
        self.init_embeddings = init_embeddings
        self.embedding_window = embedding_window
        self.max_len = max_len
        self.min_freq = min_freq
        self.max_vocab = max_vocab
        self.stop_words = stop_words
        self.lowercase = lowercase
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.seed = seed
        self.verbose = verbose

    def fit(self, texts, labels):
        random_state = self._resolved_random_state()
        self._check_training_params()
        if self.init_embeddings not in ("corpus", "random"):
            raise ValueError(f"init_embeddings must be 'corpus' or 'random', got {self.init_embeddings!r}")
        texts, self.classes_, y = self._labels(texts, labels)
        train, val = self._split(y, random_state)
        train_texts = [texts[i] for i in train]
        # the vocabulary and the word vectors come from the training part only: validation
        # texts stand for unseen ones
        self.vocab_ = Vocabulary.from_texts(train_texts, min_freq=self.min_freq, max_size=self.max_vocab,
                                            stop_words=self.stop_words, lowercase=self.lowercase)
        ids, lengths = to_sequences(texts, self.vocab_, max_len=self.max_len)
        self.model_ = SequenceClassifier(len(self.vocab_), len(self.classes_), embedding_dim=self.embedding_dim,
                                         hidden_size=self.hidden_size, num_layers=self.num_layers,
                                         cell=self.cell, bidirectional=self.bidirectional, pooling=self.pooling,
                                         dropout=self.dropout, seed=random_state)
        if self.init_embeddings == "corpus":
            self.model_.embed.W[...] = self._corpus_vectors(train_texts)
        val_data = None if val is None else (ids[val], y[val], lengths[val])
        self.history_ = self._train(self.model_, (ids[train], y[train], lengths[train]), val_data, random_state)
        return self

    def _corpus_vectors(self, texts):
        try:
            return cooccurrence_vectors(texts, self.vocab_, self.embedding_dim, window=self.embedding_window)
        except ValueError as e:
            if "co-occur" not in str(e):
                raise
            # texts too short to say anything about their words (one word each): start from noise
            warnings.warn(f"init_embeddings='corpus': {e}; using random embeddings", RuntimeWarning, stacklevel=3)
            return self.model_.embed.W

    def predict_proba(self, texts):
        """(N, n_classes) class probabilities, columns in ``classes_`` order."""
        self._check_fitted()
        texts = _check_texts(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        ids, lengths = to_sequences(texts, self.vocab_, max_len=self.max_len)
        return softmax(predict(self.model_, ids, lengths, batch_size=128).astype(np.float64))


class BagOfWordsClassifier(_TextEstimator):
    __doc__ = """The feed-forward baseline: ``BagOfWords`` (``weighting`` "tfidf" | "count" |
    "binary", ``ngram_range``, ``min_df``, ``max_features``, ``stop_words``) -> ``MLPClassifier``
    (``hidden_sizes``, ``dropout``; ``hidden_sizes=()`` is multinomial logistic regression),
    trained with the same Trainer as ``TextClassifier`` so the two compare like for like.

""" + _EARLY_STOPPING_DOC

    def __init__(self, *, hidden_sizes=(64,), dropout=0.0, weighting="tfidf", ngram_range=(1, 1), min_df=1,
                 max_features=20000, stop_words=None, epochs=30, batch_size=32, optimizer="adam", lr=3e-3,
                 weight_decay=0.0, clip_norm=5.0, early_stopping=True, validation_fraction=0.1,
                 n_iter_no_change=3, random_state=0, seed=None, verbose=False):
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
        self.weight_decay = weight_decay
        self.clip_norm = clip_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.seed = seed
        self.verbose = verbose

    def fit(self, texts, labels):
        random_state = self._resolved_random_state()
        self._check_training_params()
        texts, self.classes_, y = self._labels(texts, labels)
        train, val = self._split(y, random_state)
        self.bow_ = BagOfWords(weighting=self.weighting, ngram_range=self.ngram_range, min_df=self.min_df,
                               max_features=self.max_features, stop_words=self.stop_words, dtype=np.float32)
        X_train = self.bow_.fit_transform([texts[i] for i in train])
        self.model_ = MLPClassifier(X_train.shape[1], len(self.classes_), hidden_sizes=tuple(self.hidden_sizes),
                                    dropout=self.dropout, seed=random_state)
        val_data = None if val is None else (self.bow_.transform([texts[i] for i in val]), y[val])
        self.history_ = self._train(self.model_, (X_train, y[train]), val_data, random_state)
        return self

    def predict_proba(self, texts):
        self._check_fitted()
        X = self.bow_.transform(_check_texts(texts))
        if X.shape[0] == 0:
            return np.zeros((0, len(self.classes_)))
        return softmax(predict(self.model_, X, batch_size=256).astype(np.float64))
