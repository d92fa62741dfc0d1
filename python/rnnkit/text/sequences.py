"""Padded id matrices for the RNN layers."""
from __future__ import annotations

import numpy as np

from .vocabulary import Vocabulary

__all__ = ["to_sequences"]


def to_sequences(texts_or_tokens, vocab: Vocabulary, *, max_len: int | None = None,
                 padding: str = "post", truncating: str = "post"):
    """Texts (str) or token lists -> ``(ids, lengths)``.

    Returns ``ids``: (N, T) int64 filled with ``vocab.pad_id`` (0) and ``lengths``: (N,) int64,
    the number of real ids in each row. Raw texts are tokenized with ``vocab.tokenizer``;
    ``<bos>``/``<eos>`` are added when the vocabulary has them, before truncation.
    ``T = max_len`` or the longest sequence. ``truncating="post"`` keeps the first ``max_len``
    ids, ``"pre"`` the last. ``padding="post"`` puts the ids at the start of each row, which is
    what the RNN layers' ``lengths=`` expects (steps ``t < lengths[b]`` are valid);
    ``padding="pre"`` right-aligns them (Keras style) and is for models that do not use lengths.
    """
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a rnnkit.text.Vocabulary, got {type(vocab).__name__}")
    if padding not in ("post", "pre"):
        raise ValueError(f"padding must be 'post' or 'pre', got {padding!r}")
    if truncating not in ("post", "pre"):
        raise ValueError(f"truncating must be 'post' or 'pre', got {truncating!r}")
    if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer))
                                or max_len < 1):
        raise ValueError(f"max_len must be None or an int >= 1, got {max_len!r}")
    if isinstance(texts_or_tokens, (str, bytes)):
        raise TypeError("texts_or_tokens must be a list of texts or of token lists, got a single "
                        f"{type(texts_or_tokens).__name__}; wrap it in a list")
    try:
        items = list(texts_or_tokens)
    except TypeError:
        raise TypeError(f"texts_or_tokens must be a list of texts or of token lists, "
                        f"got {type(texts_or_tokens).__name__}") from None
    if not items:
        raise ValueError("texts_or_tokens is empty: need at least one text or token list")
    encoded = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            encoded.append(vocab.encode(vocab.tokenizer(item)))
        elif isinstance(item, (list, tuple)) and all(isinstance(t, str) for t in item):
            encoded.append(vocab.encode(item))
        else:
            raise TypeError(f"texts_or_tokens[{i}] must be a str or a list of str tokens, "
                            f"got {type(item).__name__}: {item!r:.40}")
    lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
    T = int(lengths.max()) if max_len is None else int(max_len)
    np.minimum(lengths, T, out=lengths)
    ids = np.full((len(encoded), T), vocab.pad_id, dtype=np.int64)
    for row, (seq, n) in enumerate(zip(encoded, lengths.tolist())):
        if n == 0:
            continue
        seq = seq[:n] if truncating == "post" else seq[len(seq) - n:]
        if padding == "post":
            ids[row, :n] = seq
        else:
            ids[row, T - n:] = seq
    return ids, lengths
