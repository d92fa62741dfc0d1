"""Bag of words: document-term matrices (counts, binary, tf-idf) as scipy.sparse CSR."""
from __future__ import annotations

import contextlib
import inspect
import numbers

import numpy as np
import scipy.sparse as sp

from ..distributed import group
from .tokenize import Tokenizer
from .vocabulary import Vocabulary, _check_texts

__all__ = ["BagOfWords", "NotFittedError"]

_WEIGHTINGS = ("count", "binary", "tfidf")
_NORMS = ("auto", "l1", "l2", None)
_TOKEN_DEFAULTS = {"stop_words": None, "ngram_range": (1, 1), "analyzer": "word", "min_token_len": 1,
                   "lowercase": True, "strip_punctuation": True, "strip_numbers": True,
                   "strip_special": True, "strip_accents": None}


class NotFittedError(ValueError, AttributeError):
    """Raised when transform-like methods are called before ``fit`` (as in scikit-learn)."""


class _GrowingIndex(dict):
    """term -> column; an unseen term gets the next column (one C-level lookup per token)."""

    def __missing__(self, term):
        index = self[term] = len(self)
        return index


class _FixedIndex(dict):
    """term -> column; an unseen term gives -1 and is dropped later."""

    def __missing__(self, term):
        return -1


class BagOfWords:
    """Texts -> document-term matrix (DTM: documents in rows, terms in columns), CSR.

    Tokenization: ``stop_words``, ``ngram_range``, ``analyzer`` ("word", "char", "char_wb" or a
    callable str -> list of str that replaces the whole tokenization), ``min_token_len`` and the
    ``normalize`` switches, exactly as in ``rnnkit.text.Tokenizer``.

    Vocabulary: learned from the documents given to ``fit`` (columns in alphabetical order, as
    scikit-learn) and pruned by document frequency - ``min_df``/``max_df`` are document counts
    when ints and fractions of the documents when floats - then cut to the ``max_features``
    most frequent terms over the corpus (ties: alphabetical). Or fixed with ``vocabulary=``: a
    mapping term -> column, an iterable of terms (columns in that order), or a
    ``rnnkit.text.Vocabulary`` (its tokens without the specials, in id order, so column
    ``j`` is id ``j + vocab.n_specials``; its tokenizer is then used, and the tokenization
    arguments must stay at their defaults).

    Weighting (scikit-learn's formulas): "count" - raw counts tf; "binary" - 1 where tf > 0;
    "tfidf" - tf * idf with idf = ln((1 + n) / (1 + df)) + 1 when ``smooth_idf`` else
    ln(n / df) + 1, and tf replaced by 1 + ln(tf) when ``sublinear_tf``. ``norm`` scales each
    row to unit "l2" or "l1" norm; "auto" means "l2" for tf-idf and no scaling otherwise.

    The matrix is int64 for unscaled "count"/"binary", else float64 (``dtype=`` overrides). It
    is never densified.

    Fitted attributes: ``vocabulary_`` (term -> column), ``idf_`` (tf-idf only),
    ``document_frequency_``.

    ``fit(docs, distributed="mpi")`` (or an mpi4py communicator): each rank passes its own
    documents and every rank gets the vocabulary, document frequencies and idf of all of them,
    as one process fitting them all; ``fit_transform`` returns the rows of the rank's own
    documents. ``transform`` needs no other rank.
    """

    def __init__(self, *, stop_words=None, ngram_range=(1, 1), analyzer="word", min_token_len=1,
                 lowercase=True, strip_punctuation=True, strip_numbers=True, strip_special=True,
                 strip_accents=None, min_df=1, max_df=1.0, max_features=None, weighting="count",
                 sublinear_tf=False, smooth_idf=True, norm="auto", vocabulary=None, dtype=None):
        self.stop_words = stop_words
        self.ngram_range = ngram_range
        self.analyzer = analyzer
        self.min_token_len = min_token_len
        self.lowercase = lowercase
        self.strip_punctuation = strip_punctuation
        self.strip_numbers = strip_numbers
        self.strip_special = strip_special
        self.strip_accents = strip_accents
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.weighting = weighting
        self.sublinear_tf = sublinear_tf
        self.smooth_idf = smooth_idf
        self.norm = norm
        self.vocabulary = vocabulary
        self.dtype = dtype

    # ------------------------------------------------------------------ scikit-learn protocol
    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}

    def set_params(self, **params) -> "BagOfWords":
        valid = inspect.signature(type(self)).parameters
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for BagOfWords")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {k: p.default for k, p in inspect.signature(type(self)).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if v is not defaults[k] and v != defaults[k]]
        return f"BagOfWords({', '.join(changed)})"

    # ------------------------------------------------------------------ checks
    def build_analyzer(self):
        """The callable str -> list of terms this estimator uses."""
        if isinstance(self.vocabulary, Vocabulary):
            changed = [k for k, v in _TOKEN_DEFAULTS.items() if getattr(self, k) != v]
            if changed:
                raise ValueError(f"vocabulary is a Vocabulary, whose tokenizer is used; leave "
                                 f"{', '.join(changed)} at the default (set them on the Vocabulary)")
            return self.vocabulary.tokenizer
        if callable(self.analyzer):
            return self.analyzer
        return Tokenizer(ngram_range=self.ngram_range, stop_words=self.stop_words,
                         min_token_len=self.min_token_len, analyzer=self.analyzer,
                         lowercase=self.lowercase, strip_punctuation=self.strip_punctuation,
                         strip_numbers=self.strip_numbers, strip_special=self.strip_special,
                         strip_accents=self.strip_accents)

    def _check_params(self) -> None:
        if self.weighting not in _WEIGHTINGS:
            raise ValueError(f"weighting must be one of {_WEIGHTINGS}, got {self.weighting!r}")
        if self.norm not in _NORMS:
            raise ValueError(f"norm must be 'auto', 'l1', 'l2' or None, got {self.norm!r}")
        if self.sublinear_tf and self.weighting != "tfidf":
            raise ValueError("sublinear_tf=True applies to weighting='tfidf' only")
        for name in ("sublinear_tf", "smooth_idf"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("min_df", "max_df"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"{name} must be an int (documents) or a float in [0, 1] (fraction), got {v!r}")
            if isinstance(v, numbers.Integral) and v < 0 or not isinstance(v, numbers.Integral) and not 0 <= v <= 1:
                raise ValueError(f"{name} must be an int >= 0 or a float in [0, 1], got {v!r}")
        mf = self.max_features
        if mf is not None and (isinstance(mf, bool) or not isinstance(mf, numbers.Integral) or mf < 1):
            raise ValueError(f"max_features must be None or an int >= 1, got {mf!r}")
        if self.dtype is not None and np.dtype(self.dtype).kind not in "iuf":
            raise TypeError(f"dtype must be an integer or float dtype, got {self.dtype!r}")

    def _fixed_vocabulary(self) -> dict | None:
        vocab = self.vocabulary
        if vocab is None:
            return None
        if isinstance(vocab, Vocabulary):
            terms = vocab.tokens[vocab.n_specials:]
        elif isinstance(vocab, dict) or hasattr(vocab, "items"):
            mapping = dict(vocab.items())
            columns = sorted(mapping.values()) if all(isinstance(c, numbers.Integral) and not isinstance(c, bool)
                                                      for c in mapping.values()) else None
            if columns != list(range(len(mapping))):
                raise ValueError("vocabulary mapping must map terms to the columns 0..n-1, each once")
            terms = sorted(mapping, key=mapping.__getitem__)
        elif isinstance(vocab, str):
            raise TypeError("vocabulary must be a mapping, an iterable of terms or a Vocabulary, got a str")
        else:
            terms = list(vocab)
        if not terms:
            raise ValueError("vocabulary is empty")
        bad = [t for t in terms if not isinstance(t, str)]
        if bad:
            raise TypeError(f"vocabulary terms must be str, got {bad[0]!r}")
        index = _FixedIndex((t, j) for j, t in enumerate(terms))
        if len(index) != len(terms):
            raise ValueError("vocabulary contains duplicate terms")
        return index

    def _check_fitted(self) -> None:
        if not hasattr(self, "vocabulary_"):
            raise NotFittedError("this BagOfWords is not fitted yet; call fit or fit_transform first")

    # ------------------------------------------------------------------ counting
    @staticmethod
    def _documents(raw_documents) -> list[str]:
        docs = _check_texts(raw_documents, "raw_documents")
        if not docs:
            raise ValueError("raw_documents is empty: need at least one document")
        return docs

    @staticmethod
    def _count(docs, analyze, index):
        """Counts as CSR with unsorted, duplicate column entries summed by scipy in C++."""
        columns: list[int] = []
        indptr = [0]
        extend, lookup = columns.extend, index.__getitem__
        for doc in docs:
            extend(map(lookup, analyze(doc)))
            indptr.append(len(columns))
        return np.asarray(columns, dtype=np.int64), np.asarray(indptr, dtype=np.int64)

    @staticmethod
    def _to_csr(columns, indptr, n_docs, n_terms):
        index_dtype = np.int32 if max(n_terms, len(columns)) < 2**31 else np.int64
        X = sp.csr_matrix((np.ones(len(columns), dtype=np.int64), columns.astype(index_dtype, copy=False),
                           indptr.astype(index_dtype, copy=False)), shape=(n_docs, n_terms))
        X.sum_duplicates()  # sorts each row's columns and adds repeated terms
        return X

    def _drop_unknown(self, columns, indptr):
        """Removes -1 columns (terms outside a fixed vocabulary) and fixes indptr."""
        known = columns >= 0
        if known.all():
            return columns, indptr
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        kept_per_row = np.bincount(rows[known], minlength=len(indptr) - 1)
        new_indptr = np.zeros_like(indptr)
        np.cumsum(kept_per_row, out=new_indptr[1:])
        return columns[known], new_indptr

    # ------------------------------------------------------------------ fit / transform
    def fit(self, raw_documents, y=None, *, distributed=None) -> "BagOfWords":
        """Learns the vocabulary (and idf) from ``raw_documents``, an iterable of str;
        ``distributed``: each rank's own documents (see the class docstring)."""
        self.fit_transform(raw_documents, distributed=distributed)
        return self

    def fit_transform(self, raw_documents, y=None, *, distributed=None):
        """Learns the vocabulary and returns the DTM of ``raw_documents`` (CSR, documents in rows)."""
        self._check_params()
        analyze = self.build_analyzer()
        fixed = self._fixed_vocabulary()
        dist = group(distributed)
        if dist is None:
            docs = self._documents(raw_documents)
            n_docs = len(docs)
        else:  # a rank may have no documents, but not all of them
            with dist.guard("BagOfWords.fit"):
                docs = _check_texts(raw_documents, "raw_documents")
                n_docs = dist.total(len(docs))
            if not n_docs:
                raise ValueError("raw_documents is empty on every rank: need at least one document")
        with contextlib.nullcontext() if dist is None else dist.guard("BagOfWords.fit"):
            if fixed is not None:
                columns, indptr = self._count(docs, analyze, fixed)
                columns, indptr = self._drop_unknown(columns, indptr)
                X = self._to_csr(columns, indptr, len(docs), len(fixed))
                vocabulary = dict(fixed)
                df = np.bincount(X.indices, minlength=X.shape[1]).astype(np.int64)
                if dist is not None:
                    df = dist.merge_ordered(df, np.add)
            else:
                index = _GrowingIndex()
                columns, indptr = self._count(docs, analyze, index)
                terms = sorted(index)  # alphabetical columns, as scikit-learn
                new_column = np.empty(len(terms), dtype=np.int64)
                new_column[np.fromiter((index[t] for t in terms), dtype=np.int64, count=len(terms))] = np.arange(len(terms))
                X = self._to_csr(new_column[columns], indptr, len(docs), len(terms))
                if self.weighting == "binary":
                    X.data[:] = 1  # scikit-learn ranks max_features by binarised counts too
                if dist is None:
                    X, terms, df = self._limit_features(X, terms, n_docs)
                else:
                    X, terms, df = self._limit_features_across(X, terms, n_docs, dist)
                vocabulary = {t: j for j, t in enumerate(terms)}
        self.vocabulary_ = vocabulary
        self.document_frequency_ = df
        if self.weighting == "tfidf":
            n, df = n_docs, self.document_frequency_.astype(np.float64)
            if self.smooth_idf:
                n, df = n + 1, df + 1
            with np.errstate(divide="ignore"):  # df = 0 only for unused fixed-vocabulary terms
                self.idf_ = np.log(n / df) + 1.0
        elif hasattr(self, "idf_"):
            del self.idf_
        return self._weight(X)

    def _kept_terms(self, df, n_docs, totals) -> np.ndarray:
        """The columns (of terms in alphabetical order) that min_df/max_df and max_features
        keep, from the document frequencies ``df`` over ``n_docs`` documents; ``totals(keep)``
        gives the corpus counts of the columns ``keep`` (needed for max_features only)."""
        if len(df) == 0:
            raise ValueError("empty vocabulary: every document is empty after normalisation, "
                             "stop-word removal and the token filters")
        max_count = self.max_df if isinstance(self.max_df, numbers.Integral) else self.max_df * n_docs
        min_count = self.min_df if isinstance(self.min_df, numbers.Integral) else self.min_df * n_docs
        if max_count < min_count:
            raise ValueError(f"max_df={self.max_df!r} corresponds to fewer documents than min_df={self.min_df!r}")
        keep = np.flatnonzero((df >= min_count) & (df <= max_count))
        if self.max_features is not None and len(keep) > self.max_features:
            keep = np.sort(keep[np.argsort(-totals(keep), kind="stable")[:self.max_features]])
        if len(keep) == 0:
            raise ValueError("after pruning by min_df/max_df no terms remain; lower min_df or raise max_df")
        return keep

    def _limit_features(self, X, terms, n_docs):
        df = np.bincount(X.indices, minlength=X.shape[1])
        keep = self._kept_terms(df, n_docs,
                                lambda keep: np.bincount(X.indices, weights=X.data, minlength=X.shape[1])[keep])
        if len(keep) < len(terms):
            X = X[:, keep]  # scipy's C++ column selection keeps the matrix sparse
            terms = [terms[j] for j in keep.tolist()]
        return X, terms, df[keep].astype(np.int64)

    def _limit_features_across(self, X, terms, n_docs, dist):
        """``_limit_features`` over every rank's documents: the ranks' (document frequency,
        corpus count) per term are added up, rank 0 keeps the terms, and this rank's ``X``
        (columns: its own ``terms``) is given the kept terms' columns."""
        df = np.bincount(X.indices, minlength=X.shape[1])
        totals = np.bincount(X.indices, weights=X.data, minlength=X.shape[1])
        own = {t: [int(d), float(c)] for t, d, c in zip(terms, df.tolist(), totals.tolist())}

        def add(first, then):
            for t, (d, c) in then.items():
                stats = first.setdefault(t, [0, 0.0])
                stats[0] += d
                stats[1] += c
            return first

        def keep_terms(stats):
            kept_terms = sorted(stats)
            df = np.array([stats[t][0] for t in kept_terms], dtype=np.int64)
            keep = self._kept_terms(df, n_docs, lambda keep: np.array([stats[kept_terms[j]][1] for j in keep]))
            return [kept_terms[j] for j in keep.tolist()], df[keep]

        kept, df = dist.merge_ordered(own, add, keep_terms)
        column = {t: j for j, t in enumerate(kept)}
        local = [j for j, t in enumerate(terms) if t in column]
        X = X[:, local]
        # the kept terms are alphabetical, as this rank's columns: their order stays
        where = np.array([column[terms[j]] for j in local], dtype=X.indices.dtype)
        X = sp.csr_matrix((X.data, where[X.indices], X.indptr), shape=(X.shape[0], len(kept)))
        return X, kept, df

    def transform(self, raw_documents):
        """The DTM of ``raw_documents`` over the fitted vocabulary; unseen terms are ignored."""
        self._check_fitted()
        docs = self._documents(raw_documents)
        index = _FixedIndex(self.vocabulary_)
        columns, indptr = self._count(docs, self.build_analyzer(), index)
        columns, indptr = self._drop_unknown(columns, indptr)
        return self._weight(self._to_csr(columns, indptr, len(docs), len(index)))

    def _weight(self, X):
        norm = ("l2" if self.weighting == "tfidf" else None) if self.norm == "auto" else self.norm
        if self.weighting == "binary":
            X.data[:] = 1
        if self.weighting == "count" or self.weighting == "binary":
            if norm is None:
                return X if self.dtype is None else X.astype(self.dtype)
            X = X.astype(np.float64)
        else:
            X = X.astype(np.float64)
            if self.sublinear_tf:
                np.log(X.data, out=X.data)
                X.data += 1.0
            X.data *= self.idf_[X.indices]
        if norm is not None:
            rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
            if norm == "l2":
                norms = np.sqrt(np.bincount(rows, weights=X.data * X.data, minlength=X.shape[0]))
            else:
                norms = np.bincount(rows, weights=np.abs(X.data), minlength=X.shape[0])
            norms[norms == 0.0] = 1.0  # empty documents stay zero rows
            X.data /= norms[rows]
        return X if self.dtype is None else X.astype(self.dtype)

    # ------------------------------------------------------------------ names and layouts
    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Terms in column order (object array of str)."""
        self._check_fitted()
        names = np.empty(len(self.vocabulary_), dtype=object)
        for term, j in self.vocabulary_.items():
            names[j] = term
        return names

    def term_document(self, X):
        """The term-document matrix (TDM: terms in rows, documents in columns) of a DTM ``X``."""
        self._check_fitted()
        if not (sp.issparse(X) or isinstance(X, np.ndarray)) or X.ndim != 2:
            raise TypeError(f"X must be a 2-D document-term matrix, got {type(X).__name__}")
        if X.shape[1] != len(self.vocabulary_):
            raise ValueError(f"X has {X.shape[1]} columns but the vocabulary has "
                             f"{len(self.vocabulary_)} terms; X must be this BagOfWords' DTM")
        return sp.csr_matrix(X.T) if sp.issparse(X) else X.T.copy()
