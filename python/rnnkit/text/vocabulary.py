"""Vocabulary: token <-> id, with the padding and unknown specials fixed at 0 and 1."""
from __future__ import annotations

import contextlib
import json
import os
from collections import Counter

import numpy as np

from .._checks import check_positive_int
from ..distributed import group
from .tokenize import Tokenizer

__all__ = ["Vocabulary"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
_FORMAT = "rnnkit.text.Vocabulary"


def _check_token_list(tokens, what: str) -> None:
    if isinstance(tokens, str):
        raise TypeError(f"{what} must be a list of tokens (str), got a single str {tokens[:30]!r}; "
                        f"tokenize it first or use Vocabulary.from_texts / to_sequences")


class Vocabulary:
    """Maps tokens to ids: ``<pad>``=0, ``<unk>``=1, then ``<bos>``, ``<eos>`` when asked for,
    then the tokens by decreasing frequency, ties in order of first appearance.

    Args:
        token_streams: iterable of token lists (one list per document), e.g. from ``tokenize``.
        min_freq: tokens seen fewer times than this are left out (they encode as ``<unk>``).
        max_size: largest total size *including* the specials; the rarest tokens are cut.
        bos, eos: add ``<bos>`` / ``<eos>``; ``encode`` then wraps every sequence in them.
        tokenizer: the ``Tokenizer`` (or its options dict) that turns raw texts into tokens for
            this vocabulary; ``to_sequences`` and ``encode_text`` use it. Default: ``Tokenizer()``.
        distributed: None, or "mpi" / an mpi4py communicator / a ``rnnkit.distributed.Group``:
            each rank passes its own documents, and every rank gets the vocabulary of all of
            them in rank order - the one a single process builds from rank 0's documents, then
            rank 1's, and so on (counts added up, first appearance over that order).

    Tokens equal to a special's string are not counted as ordinary tokens.
    """

    def __init__(self, token_streams=(), *, min_freq: int = 1, max_size: int | None = None,
                 bos: bool = False, eos: bool = False, tokenizer=None, distributed=None):
        min_freq = check_positive_int(min_freq, "min_freq")
        specials = [PAD, UNK] + ([BOS] if bos else []) + ([EOS] if eos else [])
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < len(specials)):
            raise ValueError(f"max_size must be None or an int >= {len(specials)} (the number of "
                             f"specials), got {max_size!r}")
        if isinstance(token_streams, str):
            raise TypeError("token_streams must be an iterable of token lists, got a str")
        dist = group(distributed)
        with contextlib.nullcontext() if dist is None else dist.guard("Vocabulary"):
            counts = _count_tokens(token_streams, specials)
            if dist is None:
                kept = _ranked(counts, min_freq, max_size, len(specials))
            else:
                kept = dist.merge_ordered(counts, _add_counts,
                                          lambda total: _ranked(total, min_freq, max_size, len(specials)))
        self.min_freq, self.max_size, self.bos, self.eos = min_freq, max_size, bos, eos
        self._set_tokens(specials + [t for t, _ in kept], [0] * len(specials) + [c for _, c in kept],
                         len(specials))
        self.tokenizer = _as_tokenizer(tokenizer)

    def _set_tokens(self, tokens: list[str], counts: list[int], n_specials: int) -> None:
        self._itos = tokens
        self._stoi = {t: i for i, t in enumerate(tokens)}
        if len(self._stoi) != len(tokens):
            raise ValueError("vocabulary tokens must be unique")
        self._counts = counts
        self.n_specials = n_specials

    @classmethod
    def from_texts(cls, texts, *, tokenizer=None, min_freq: int = 1, max_size: int | None = None,
                   bos: bool = False, eos: bool = False, distributed=None, **tokenizer_options) -> "Vocabulary":
        """Builds from raw texts with ``tokenizer`` (or ``Tokenizer(**tokenizer_options)``);
        ``distributed``: each rank's own texts, as in the constructor."""
        if tokenizer is not None and tokenizer_options:
            raise TypeError("give either tokenizer= or tokenizer options, not both")
        tok = _as_tokenizer(tokenizer if tokenizer is not None else tokenizer_options)
        dist = group(distributed)
        with contextlib.nullcontext() if dist is None else dist.guard("Vocabulary.from_texts"):
            texts = _check_texts(texts)
            n_texts = len(texts) if dist is None else dist.total(len(texts))
        # as to_sequences: an empty corpus is a mistake, not a 2-token vocabulary (distributed:
        # a rank may have no texts, but not all of them)
        if not n_texts:
            raise ValueError("texts is empty" + ("" if dist is None else " on every rank") +
                             ": need at least one text to build a vocabulary from")
        return cls((tok(t) for t in texts), min_freq=min_freq, max_size=max_size, bos=bos, eos=eos,
                   tokenizer=tok, distributed=dist)

    # ------------------------------------------------------------------ lookups
    pad_id = 0
    unk_id = 1

    @property
    def bos_id(self) -> int | None:
        return self._stoi[BOS] if self.bos else None

    @property
    def eos_id(self) -> int | None:
        return self._stoi[EOS] if self.eos else None

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, specials first (a copy)."""
        return list(self._itos)

    @property
    def counts(self) -> list[int]:
        """Frequency of each token in id order (0 for specials)."""
        return list(self._counts)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token) -> bool:
        return token in self._stoi

    def __iter__(self):
        return iter(self._itos)

    def __getitem__(self, token: str) -> int:
        """The id of ``token``; ``<unk>``'s id when it is not in the vocabulary."""
        return self._stoi.get(token, 1)

    def id_to_token(self, i: int) -> str:
        return self._itos[self._check_id(i, "i")]

    def _check_id(self, i, where: str) -> int:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"ids must be integers, got {i!r} ({type(i).__name__}) at {where}")
        if not 0 <= i < len(self._itos):
            raise IndexError(f"id {int(i)} at {where} is out of range for a vocabulary of "
                             f"{len(self._itos)} tokens (valid ids: 0..{len(self._itos) - 1})")
        return int(i)

    # ------------------------------------------------------------------ encode / decode
    def encode(self, tokens, *, add_bos: bool | None = None, add_eos: bool | None = None) -> list[int]:
        """Token list -> id list; unknown tokens -> 1. ``add_bos``/``add_eos`` default to
        whether the vocabulary has ``<bos>``/``<eos>``."""
        _check_token_list(tokens, "tokens")
        add_bos = self.bos if add_bos is None else add_bos
        add_eos = self.eos if add_eos is None else add_eos
        if (add_bos and not self.bos) or (add_eos and not self.eos):
            raise ValueError("this vocabulary has no <bos>/<eos>; build it with bos=True / eos=True")
        get = self._stoi.get
        ids = [get(t, 1) for t in tokens]
        if add_bos:
            ids.insert(0, self._stoi[BOS])
        if add_eos:
            ids.append(self._stoi[EOS])
        return ids

    def encode_text(self, text: str, **kwargs) -> list[int]:
        """Raw text -> ids, with this vocabulary's tokenizer."""
        return self.encode(self.tokenizer(text), **kwargs)

    def decode(self, ids, *, skip_specials: bool = True) -> list[str]:
        """Ids -> tokens; specials (padding, <bos>, <eos>, but not <unk>) are dropped unless
        ``skip_specials=False``. Out-of-range or non-integer ids raise, naming the position."""
        arr = np.asarray(ids)
        if arr.ndim != 1:
            raise ValueError(f"ids must be one-dimensional, got shape {arr.shape}")
        if arr.size == 0:
            return []
        if arr.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got an array of dtype {arr.dtype}")
        out = []
        for pos, i in enumerate(arr.tolist()):
            i = self._check_id(i, f"position {pos}")
            if skip_specials and i < self.n_specials and i != self.unk_id:
                continue
            out.append(self._itos[i])
        return out

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "tokens": self._itos, "counts": self._counts,
                "n_specials": self.n_specials, "min_freq": self.min_freq, "max_size": self.max_size,
                "bos": self.bos, "eos": self.eos, "tokenizer": self.tokenizer.get_options()}

    def save(self, path) -> None:
        """Writes the vocabulary (tokens, counts, settings, tokenizer options) as UTF-8 JSON."""
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False)

    @classmethod
    def load(cls, path) -> "Vocabulary":
        """The vocabulary ``save`` wrote. ValueError naming the file when it is not one (not
        UTF-8 JSON, nested deeper than Python's recursion limit, another format or version, or
        a corrupt vocabulary); OSError when it cannot be read. Nothing in it is run."""
        try:
            with open(os.fspath(path), encoding="utf-8") as f:
                data = json.load(f)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
            raise ValueError(f"{os.fspath(path)!r} is not a saved rnnkit Vocabulary: "
                             f"{type(exc).__name__}: {str(exc)[:200]}") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{os.fspath(path)!r}: {exc}") from None

    @classmethod
    def from_dict(cls, data) -> "Vocabulary":
        """The vocabulary ``to_dict()`` described; ValueError when ``data`` is not one."""
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError("not a saved rnnkit Vocabulary")
        if data.get("version") != 1:
            raise ValueError(f"unsupported Vocabulary file version {data.get('version')!r}")
        vocab = cls.__new__(cls)
        try:
            vocab.min_freq, vocab.max_size = data["min_freq"], data["max_size"]
            vocab.bos, vocab.eos = data["bos"], data["eos"]
            tokens, counts = data["tokens"], data["counts"]
            if not isinstance(tokens, list) or not isinstance(counts, list) \
                    or not all(isinstance(t, str) for t in tokens):
                raise ValueError("tokens and counts must be lists (tokens of str)")
            vocab._set_tokens(list(tokens), list(counts), data["n_specials"])
            if vocab._itos[:2] != [PAD, UNK] or len(vocab._counts) != len(vocab._itos):
                raise ValueError("the specials or the counts do not match the tokens")
            vocab.tokenizer = _as_tokenizer(data["tokenizer"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"corrupt Vocabulary file: {type(exc).__name__}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"corrupt Vocabulary file: {exc}") from None
        return vocab

    def __eq__(self, other) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, specials={self._itos[:self.n_specials]})"


def _count_tokens(token_streams, specials) -> Counter:
    """Token -> count over the streams, in order of first appearance, without the specials."""
    counts: Counter = Counter()
    for i, tokens in enumerate(token_streams):
        _check_token_list(tokens, f"token_streams[{i}]")
        if not isinstance(tokens, (list, tuple)):
            try:
                tokens = list(tokens)
            except TypeError:
                raise TypeError(f"token_streams[{i}] must be a list of str tokens, "
                                f"got {type(tokens).__name__}") from None
        counts.update(tokens)  # Counter keeps first-appearance order for ties
    for tok in counts:
        if not isinstance(tok, str):
            raise TypeError(f"tokens must be str, got {tok!r} ({type(tok).__name__})")
    for s in specials:
        counts.pop(s, None)
    return counts


def _add_counts(first: Counter, then: Counter) -> Counter:
    """The counts of ``first``'s documents followed by ``then``'s: tokens new in ``then`` come
    after ``first``'s, in their order of first appearance."""
    first.update(then)
    return first


def _ranked(counts: Counter, min_freq: int, max_size, n_specials: int) -> list:
    """(token, count) kept: at least ``min_freq``, by decreasing count, ties in order of first
    appearance, cut to ``max_size`` with the specials."""
    kept = [(t, c) for t, c in counts.items() if c >= min_freq]
    kept.sort(key=lambda tc: -tc[1])  # stable: ties stay in first-appearance order
    if max_size is not None:
        kept = kept[:max_size - n_specials]
    return kept


def _as_tokenizer(tokenizer) -> Tokenizer:
    if tokenizer is None:
        return Tokenizer()
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, dict):
        opts = dict(tokenizer)
        if "ngram_range" in opts:
            opts["ngram_range"] = tuple(opts["ngram_range"])
        return Tokenizer(**opts)
    raise TypeError(f"tokenizer must be a Tokenizer, a dict of its options or None, "
                    f"got {type(tokenizer).__name__}")


def _check_texts(texts, name: str = "texts") -> list[str]:
    """A list of documents; TypeError naming the first one that is not a str."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be an iterable of str documents, got a single "
                        f"{type(texts).__name__}; wrap it in a list")
    try:
        texts = list(texts)
    except TypeError:
        raise TypeError(f"{name} must be an iterable of str documents, got {type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(t).__name__}: {t!r:.40}")
    return texts
