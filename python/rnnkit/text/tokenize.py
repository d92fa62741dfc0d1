"""Word tokens, word n-grams and character n-grams."""
from __future__ import annotations

from .normalize import _check_options, _normalize_words
from .stopwords import resolve_stop_words, warn_unmatchable

__all__ = ["Tokenizer", "tokenize"]

_ANALYZERS = ("word", "char", "char_wb")


def _check_ngram_range(ngram_range) -> tuple[int, int]:
    try:
        lo, hi = ngram_range
    except (TypeError, ValueError):
        raise TypeError(f"ngram_range must be a pair (min_n, max_n), got {ngram_range!r}") from None
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"ngram_range must hold two ints, got {ngram_range!r}")
    if not 1 <= lo <= hi:
        raise ValueError(f"ngram_range must satisfy 1 <= min_n <= max_n, got {ngram_range!r}")
    return lo, hi


class Tokenizer:
    """Text -> list of tokens, with every option checked once (reuse it over a corpus).

    Word mode (``analyzer="word"``): ``normalize`` the text, split on whitespace, drop tokens
    shorter than ``min_token_len`` characters, drop stop words, then form n-grams for each
    n in ``ngram_range``: runs of n consecutive *remaining* words joined by one space. Because
    n-grams are built after stop-word removal, "state of the art" gives the bigram
    "state art" with English stop words (scikit-learn makes the same choice).

    Character modes: ``"char"`` gives the character n-grams of the remaining words joined by
    one space; ``"char_wb"`` gives those of each word padded with one space on each side (so no
    n-gram spans two words). Output order: all n-grams for the smallest n first, each in text
    order.
    """

    __slots__ = ("analyzer", "ngram_range", "stop_words", "min_token_len", "normalize_options",
                 "_stop_given")

    def __init__(self, *, ngram_range=(1, 1), stop_words=None, min_token_len: int = 1,
                 analyzer: str = "word", lowercase: bool = True, strip_punctuation: bool = True,
                 strip_numbers: bool = True, strip_special: bool = True, strip_accents=None):
        if analyzer not in _ANALYZERS:
            raise ValueError(f"analyzer must be one of {_ANALYZERS}, got {analyzer!r}")
        if isinstance(min_token_len, bool) or not isinstance(min_token_len, int):
            raise TypeError(f"min_token_len must be an int, got {type(min_token_len).__name__}")
        if min_token_len < 1:
            raise ValueError(f"min_token_len must be >= 1, got {min_token_len}")
        _check_options(lowercase, strip_punctuation, strip_numbers, strip_special, strip_accents)
        self.analyzer = analyzer
        self.ngram_range = _check_ngram_range(ngram_range)
        self._stop_given = stop_words
        self.stop_words = resolve_stop_words(stop_words)
        self.min_token_len = min_token_len
        self.normalize_options = (lowercase, strip_punctuation, strip_numbers, strip_special, strip_accents)
        warn_unmatchable(self.stop_words, self.normalize_options, stacklevel=4)

    def get_options(self) -> dict:
        """The keyword arguments that rebuild this tokenizer (JSON-serialisable)."""
        stop = self._stop_given
        if stop is not None and not isinstance(stop, str):
            stop = sorted(self.stop_words)
        lowercase, strip_punctuation, strip_numbers, strip_special, strip_accents = self.normalize_options
        return {"ngram_range": list(self.ngram_range), "stop_words": stop,
                "min_token_len": self.min_token_len, "analyzer": self.analyzer,
                "lowercase": lowercase, "strip_punctuation": strip_punctuation,
                "strip_numbers": strip_numbers, "strip_special": strip_special,
                "strip_accents": strip_accents}

    def words(self, text: str) -> list[str]:
        """Normalised words after the length and stop-word filters (no n-grams)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        words = _normalize_words(text, *self.normalize_options)
        if self.min_token_len > 1:
            m = self.min_token_len
            words = [w for w in words if len(w) >= m]
        if self.stop_words:
            stop = self.stop_words
            words = [w for w in words if w not in stop]
        return words

    def __call__(self, text: str) -> list[str]:
        words = self.words(text)
        lo, hi = self.ngram_range
        if self.analyzer == "word":
            if hi == 1:
                return words
            tokens = words if lo == 1 else []
            for n in range(max(lo, 2), hi + 1):
                tokens = tokens + [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
            return tokens
        if self.analyzer == "char":
            return _char_ngrams(" ".join(words), lo, hi)
        tokens = []
        for n in range(lo, hi + 1):
            for w in words:
                padded = f" {w} "
                tokens.extend(padded[i:i + n] for i in range(len(padded) - n + 1))
        return tokens

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.get_options().items())
        return f"Tokenizer({opts})"


def _char_ngrams(text: str, lo: int, hi: int) -> list[str]:
    return [text[i:i + n] for n in range(lo, hi + 1) for i in range(len(text) - n + 1)]


def tokenize(text: str, *, ngram_range=(1, 1), stop_words=None, min_token_len: int = 1,
             analyzer: str = "word", lowercase: bool = True, strip_punctuation: bool = True,
             strip_numbers: bool = True, strip_special: bool = True, strip_accents=None) -> list[str]:
    """Tokens of one text; see ``Tokenizer`` for the rules (build a Tokenizer for many texts)."""
    return Tokenizer(ngram_range=ngram_range, stop_words=stop_words, min_token_len=min_token_len,
                     analyzer=analyzer, lowercase=lowercase, strip_punctuation=strip_punctuation,
                     strip_numbers=strip_numbers, strip_special=strip_special,
                     strip_accents=strip_accents)(text)
