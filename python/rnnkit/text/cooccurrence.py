"""Word vectors from a corpus alone: positive pointwise mutual information (PPMI) of windowed
co-occurrence counts, reduced by a truncated SVD.

Count-based vectors of this kind are as good as small neural word vectors on word-similarity
tasks and need no download, so an embedding layer can start from what the training texts say
about their words instead of from noise.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._checks import check_positive_int
from .vocabulary import Vocabulary

__all__ = ["cooccurrence_matrix", "cooccurrence_vectors"]


def _document_ids(documents, vocab: Vocabulary) -> list:
    if isinstance(documents, str):
        raise TypeError("documents must be a list of texts or token lists, got a str")
    ids = []
    for i, doc in enumerate(documents):
        if isinstance(doc, str):
            ids.append(vocab.encode_text(doc, add_bos=False, add_eos=False))
        elif isinstance(doc, (list, tuple)):
            ids.append(vocab.encode(list(doc), add_bos=False, add_eos=False))
        else:
            raise TypeError(f"documents[{i}] must be a str or a list of str tokens, got {type(doc).__name__}")
    return ids


def cooccurrence_matrix(documents, vocab: Vocabulary, *, window: int = 5) -> sp.csr_matrix:
    """Symmetric (V, V) float64 counts: every pair of vocabulary tokens at most ``window``
    positions apart in one document adds ``1 / distance`` (near neighbours say more about a
    word than far ones). Specials (padding, unknown words, <bos>/<eos>) count nothing.

    ``documents``: raw texts (tokenized with ``vocab.tokenizer``) or token lists.
    """
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a rnnkit.text.Vocabulary, got {type(vocab).__name__}")
    window = check_positive_int(window, "window")
    rows, cols, weights = [], [], []
    for ids in _document_ids(documents, vocab):
        # drop specials before pairing: an unknown word still occupies its position
        ids = np.asarray(ids, dtype=np.int64)
        position = np.arange(ids.size)
        known = ids >= vocab.n_specials
        ids, position = ids[known], position[known]
        for shift in range(1, window + 1):
            if shift >= ids.size:
                break
            distance = position[shift:] - position[:-shift]
            near = distance <= window
            rows.append(ids[:-shift][near])
            cols.append(ids[shift:][near])
            weights.append(1.0 / distance[near])
    n = len(vocab)
    if not rows:
        return sp.csr_matrix((n, n))
    r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    counts = sp.coo_matrix((w, (r, c)), shape=(n, n)).tocsr()
    return (counts + counts.T).tocsr()


def _ppmi(counts: sp.csr_matrix, context_smoothing: float) -> sp.csr_matrix:
    """PPMI with the context distribution raised to ``context_smoothing`` (0.75 as in Levy,
    Goldberg & Dagan 2015), which keeps rare contexts from getting inflated PMI."""
    total = counts.sum()
    word = np.asarray(counts.sum(axis=1)).ravel()
    context = np.asarray(counts.sum(axis=0)).ravel() ** context_smoothing
    context = context / context.sum()
    coo = counts.tocoo()
    pmi = np.log(coo.data * 1.0 / total) - np.log(word[coo.row] / total) - np.log(context[coo.col])
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def _truncated_svd(matrix: sp.csr_matrix, rank: int):
    """The ``rank`` largest singular triplets, deterministic: dense LAPACK for small matrices,
    ARPACK from a fixed start vector otherwise; signs fixed so that each left singular
    vector's largest-magnitude entry is positive."""
    n = min(matrix.shape)
    if n <= 1000 or rank >= n - 1:
        u, s, _ = np.linalg.svd(matrix.toarray(), full_matrices=False)
        u, s = u[:, :rank], s[:rank]
    else:
        from scipy.sparse.linalg import svds

        start = np.full(n, 1.0 / np.sqrt(n))
        u, s, _ = svds(matrix, k=rank, v0=start, solver="arpack")
        order = np.argsort(-s)
        u, s = u[:, order], s[order]
    pivot = np.argmax(np.abs(u), axis=0)
    u = u * np.sign(u[pivot, np.arange(u.shape[1])])
    return u, s


def cooccurrence_vectors(documents, vocab: Vocabulary, dim: int = 64, *, window: int = 5,
                         context_smoothing: float = 0.75, scale: float = 1.0,
                         dtype=np.float32) -> np.ndarray:
    """(len(vocab), dim) word vectors from ``documents`` alone: PPMI of the windowed
    co-occurrence counts (``cooccurrence_matrix``), truncated SVD, rows ``U * sqrt(S)``
    (symmetric weighting, better for similarity than ``U * S``), each word's row then scaled
    to length ``scale * sqrt(dim)`` so that entries have about the spread (``scale`` = 1) of
    ``nn.Embedding``'s standard-normal initialisation.

    Deterministic (same corpus, same vectors). Specials and words that never co-occur with
    another get zero rows; when the vocabulary has fewer co-occurring words than ``dim`` the
    trailing columns are zero. Raises ValueError when no two known words ever co-occur.
    """
    dim = check_positive_int(dim, "dim")
    if not 0 < context_smoothing <= 1:
        raise ValueError(f"context_smoothing must be in (0, 1], got {context_smoothing!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    counts = cooccurrence_matrix(documents, vocab, window=window)
    active = np.flatnonzero(np.asarray(counts.sum(axis=1)).ravel() > 0)
    if active.size < 2:
        raise ValueError("no two vocabulary words co-occur within the window in documents: "
                         "cannot build co-occurrence vectors (give more or longer documents)")
    ppmi = _ppmi(counts[active][:, active], context_smoothing)
    rank = min(dim, active.size - 1)
    u, s = _truncated_svd(ppmi, rank)
    vectors = np.zeros((len(vocab), dim))
    vectors[active, :rank] = u * np.sqrt(s)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0) * (scale * np.sqrt(dim))
    return vectors.astype(dtype)
