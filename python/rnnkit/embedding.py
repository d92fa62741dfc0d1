"""Embedding lookup: forward, its dense gradient, and nearest neighbours by cosine.

Shapes: ``ids`` any shape S of integer ids into ``W``: (V, D) (V vocabulary size, D embedding
size); the output is S + (D,). ``ids`` of shape (T, B) give time-major (T, B, D) input for the
recurrent functions. The table and the ids may live on a device (CuPy arrays, both): the
lookup and the scatter-add then run there.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from . import _checks
from . import _device

__all__ = ["embedding_forward", "embedding_backward", "EmbeddingCache", "most_similar"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass
class EmbeddingCache:
    """What ``embedding_backward`` needs: the flat checked ids and the table's shape and dtype
    (not the table itself, which can be large)."""

    ids: np.ndarray  # (N,) int64, C-contiguous
    ids_shape: tuple
    num_embeddings: int
    embedding_dim: int
    dtype: np.dtype
    padding_idx: int | None


def _table(W) -> np.ndarray:
    W = W if _device.backend_of(W) is not None else np.asarray(W)
    if W.dtype not in _FLOATS:
        raise TypeError(f"W must be a float32 or float64 array, got dtype {W.dtype}")
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (V, D), got shape {W.shape}")
    return W


def embedding_forward(ids, W, *, padding_idx: int | None = None):
    """Looks up rows of ``W``: ``out[..., :] = W[ids[...]]``. Returns ``(out, cache)``.

    ids: integer array of any shape S; W: (V, D) float32/float64; out: S + (D,), W's dtype.
    padding_idx: an id whose output rows are zero (whatever ``W[padding_idx]`` holds) and
    which receives no gradient, so padding never leaks into results or gradients.
    """
    W = _table(W)
    V, D = W.shape
    dev = _device.backend_of(W)
    if dev is None:
        ids = _checks.check_ids(_placed_ids(ids, dev), V)
        _checks.check_lookup_size(ids.shape, D, W.dtype, "ids")
    else:
        ids = _device_ids(_placed_ids(ids, dev), V)
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, (int, np.integer)):
            raise TypeError(f"padding_idx must be None or an int, got {type(padding_idx).__name__}")
        if not 0 <= padding_idx < V:
            raise ValueError(f"padding_idx must be in [0, {V}), got {padding_idx}")
        padding_idx = int(padding_idx)
    xp = np if dev is None else dev.xp
    flat = xp.ascontiguousarray(ids.reshape(-1))
    out = xp.take(W, flat, axis=0)
    if padding_idx is not None:
        out[flat == padding_idx] = 0
    cache = EmbeddingCache(flat, ids.shape, V, D, W.dtype, padding_idx)
    return out.reshape(ids.shape + (D,)), cache


def _placed_ids(ids, dev):
    """TypeError naming ids when they live elsewhere than the table."""
    where = _device.backend_of(ids)
    if where is not dev:
        raise TypeError(f"ids are {_device.describe(where)} but W is {_device.describe(dev)}; "
                        "ids and the table must live in one place")
    return ids


def _device_ids(ids, V: int):
    """Device ids as int64, checked as _checks.check_ids checks host ids: the range check is
    one reduction on the device; the ids come to the host only to name an offending one."""
    if ids.dtype == bool or ids.dtype.kind not in "iu":
        raise TypeError(f"ids must be an integer array, got dtype {ids.dtype}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= V):
        _checks.check_ids(_device.to_host(ids), V)  # raises IndexError naming id and position
    return ids.astype(np.int64, copy=False)


def embedding_backward(dout, cache: EmbeddingCache, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient of the table: dense ``dW`` (V, D) with ``dW[v] = sum of dout where ids == v``.

    Rows of unused ids (and of ``padding_idx``) are zero. Deterministic (the same inputs give
    bit-identical ``dW``). dout: S + (D,) with W's dtype. The scatter-add runs in C++
    (``rnnkit._core.embedding_backward``); see bench/bench_text.py for its speed against
    ``np.add.at``.

    out: optional (V, D) C-contiguous array of W's dtype that the gradient is *added* into
    (``out += dW``) and that is returned, e.g. a gradient buffer kept across steps. For a large
    V this saves allocating and zeroing a fresh table, which costs more than the scatter itself.
    """
    if not isinstance(cache, EmbeddingCache):
        raise TypeError(f"cache must be the EmbeddingCache returned by embedding_forward, "
                        f"got {type(cache).__name__}")
    dev = _device.backend_of(cache.ids)
    if _device.backend_of(dout) is not dev:
        raise TypeError(f"dout is {_device.describe(_device.backend_of(dout))} but the forward ran "
                        f"{_device.describe(dev)}; pass dout from there")
    dout = np.asarray(dout) if dev is None else dout
    if dout.dtype != cache.dtype:
        raise TypeError(f"dout must have W's dtype {cache.dtype}, got {dout.dtype}")
    expected = cache.ids_shape + (cache.embedding_dim,)
    if dout.shape != expected:
        raise ValueError(f"dout must have shape ids.shape + (D,) = {expected}, got {dout.shape}")
    # explicit row count: reshape(-1, 0) is ambiguous for an embedding size D = 0
    xp = np if dev is None else dev.xp
    dout2 = xp.ascontiguousarray(dout.reshape(cache.ids.shape[0], cache.embedding_dim))
    table_shape = (cache.num_embeddings, cache.embedding_dim)
    if out is None:
        dW = xp.zeros(table_shape, dtype=cache.dtype)
    else:
        if _device.backend_of(out) is not dev or not hasattr(out, "flags") \
                or out.dtype != cache.dtype or out.shape != table_shape:
            raise ValueError(f"out must be a {cache.dtype} array of shape (V, D) = {table_shape}, got "
                             f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
        if not (out.flags.c_contiguous and getattr(out.flags, "writeable", True)):  # CuPy: no flag
            raise ValueError("out must be C-contiguous and writeable")
        dW = out
    if dout2.shape[0] and dev is not None:
        # the device's scatter-add (atomic adds on a GPU: the summation order may vary)
        if cache.padding_idx is not None:
            dout2 = xp.where((cache.ids != cache.padding_idx)[:, None], dout2, dout2.dtype.type(0))
        xp.add.at(dW, cache.ids, dout2)
    elif dout2.shape[0]:
        skip = -1 if cache.padding_idx is None else cache.padding_idx
        _core.embedding_backward(cache.ids, dout2, dW, skip)
    return dW


def most_similar(W, vocab, word_or_vector, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` tokens whose rows of ``W`` have the highest cosine similarity to a word's row or
    to a vector, as ``[(token, cosine)]`` best first (ties: lower id first).

    vocab: a ``rnnkit.text.Vocabulary`` (its specials are never returned) or a sequence of
    tokens in id order; ``len(vocab)`` must equal ``W.shape[0]``. The query word itself is
    left out. Rows with zero norm have cosine 0.
    """
    W = _table(W)
    from .text.vocabulary import Vocabulary

    if isinstance(vocab, Vocabulary):
        tokens, n_specials = vocab.tokens, vocab.n_specials
    elif isinstance(vocab, str) or not hasattr(vocab, "__len__"):
        raise TypeError(f"vocab must be a Vocabulary or a sequence of tokens, got {type(vocab).__name__}")
    else:
        tokens, n_specials = list(vocab), 0
    if len(tokens) != W.shape[0]:
        raise ValueError(f"W has {W.shape[0]} rows but the vocabulary has {len(tokens)} tokens; "
                         f"they must match (one row per id)")
    k = _checks.check_positive_int(k, "k")
    exclude = None
    if isinstance(word_or_vector, str):
        try:
            exclude = tokens.index(word_or_vector) if not isinstance(vocab, Vocabulary) \
                else vocab._stoi[word_or_vector]
        except (ValueError, KeyError):
            raise KeyError(f"{word_or_vector!r} is not in the vocabulary") from None
        query = W[exclude]
    else:
        query = np.asarray(word_or_vector)
        if query.dtype.kind not in "fiu" or query.shape != (W.shape[1],):
            raise ValueError(f"word_or_vector must be a token or a vector of shape ({W.shape[1]},), "
                             f"got {query.dtype} array of shape {query.shape}")
    query = query.astype(np.float64)
    qnorm = np.linalg.norm(query)
    if qnorm == 0:
        raise ValueError("the query vector has zero norm; cosine similarity is undefined")
    norms = np.linalg.norm(W, axis=1).astype(np.float64)
    norms[norms == 0] = np.inf  # zero rows get cosine 0
    cos = (W @ query.astype(W.dtype)).astype(np.float64) / (norms * qnorm)
    candidates = np.arange(n_specials, len(tokens))
    if exclude is not None:
        candidates = candidates[candidates != exclude]
    scores = cos[candidates]
    order = np.lexsort((candidates, -scores))[:k]  # a full stable sort: ties never depend on chance
    return [(tokens[i], float(s)) for i, s in zip(candidates[order].tolist(), scores[order].tolist())]
