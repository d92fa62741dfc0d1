"""Unicode-aware text normalisation.

Every character is classified by its Unicode general category (``unicodedata``):

* letters  (L*: Lu Ll Lt Lm Lo) and marks (M*: Mn Mc Me)  - always kept;
* numbers  (N*: Nd Nl No)                                  - ``strip_numbers``;
* punctuation (P*: Pc Pd Ps Pe Pi Pf Po)                    - ``strip_punctuation``;
* special  (S*: Sm Sc Sk So; Co, Cs, Cn; Cc that is not whitespace) - ``strip_special``;
  format characters (Cf: soft hyphen, zero-width space/joiner, ...) are deleted, not spaced;
* whitespace (``str.isspace()``)                           - always collapsed to one space.

A removed character becomes a space, so ``"end.Start"`` gives two words. One exception keeps
contractions whole: an apostrophe (U+0027 ``'`` or U+2019 ``’``) with a letter or mark on both
sides is kept, written as ``'`` (``"don’t"`` -> ``"don't"``).

Implementation: ``str.translate`` with tables that classify each code point the first time it
is seen (so no table of all 1.1 million code points is ever built), then a split on whitespace.
"""
from __future__ import annotations

import functools
import unicodedata

__all__ = ["normalize"]

_ACCENT_MODES = (None, "ascii", "unicode")
_SPACE = ord(" ")


class _RemovalTable(dict):
    """code point -> " " (removed), None (deleted) or itself (kept); filled on first use."""

    def __init__(self, strip_punctuation: bool, strip_numbers: bool, strip_special: bool):
        super().__init__()
        self.options = (strip_punctuation, strip_numbers, strip_special)

    def __missing__(self, cp: int):
        strip_punctuation, strip_numbers, strip_special = self.options
        ch = chr(cp)
        cat = unicodedata.category(ch)
        major = cat[0]
        result = cp
        if major in "LM" or ch.isspace() or ch == "'":
            pass  # letters and marks stay; whitespace is handled by split(); "'" afterwards
        elif major == "N":
            result = _SPACE if strip_numbers else cp
        elif major == "P":
            result = _SPACE if strip_punctuation else cp
        elif cat == "Cf":
            result = None if strip_special else cp
        elif strip_special:  # S*, Co, Cs, Cn, non-whitespace Cc
            result = _SPACE
        self[cp] = result
        return result


class _NonspacingMarkTable(dict):
    """Deletes non-spacing marks (Mn), the accents left separate by NFKD."""

    def __missing__(self, cp: int):
        result = None if unicodedata.category(chr(cp)) == "Mn" else cp
        self[cp] = result
        return result


_MARKS = _NonspacingMarkTable()


@functools.cache
def _removal_table(strip_punctuation: bool, strip_numbers: bool, strip_special: bool) -> _RemovalTable:
    return _RemovalTable(strip_punctuation, strip_numbers, strip_special)


@functools.cache
def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LM"


def _split_apostrophes(word: str) -> list[str]:
    """Splits a word at each apostrophe that lacks a letter or mark on both sides."""
    parts, start, last = [], 0, len(word) - 1
    for i, ch in enumerate(word):
        if ch == "'" and not (0 < i < last and _is_letter(word[i - 1]) and _is_letter(word[i + 1])):
            parts.append(word[start:i])
            start = i + 1
    parts.append(word[start:])
    return [p for p in parts if p]


def _check_options(lowercase, strip_punctuation, strip_numbers, strip_special, strip_accents) -> None:
    for name, value in (("lowercase", lowercase), ("strip_punctuation", strip_punctuation),
                        ("strip_numbers", strip_numbers), ("strip_special", strip_special)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    if strip_accents not in _ACCENT_MODES:
        raise ValueError(f"strip_accents must be None, 'ascii' or 'unicode', got {strip_accents!r}")


def _normalize_words(text: str, lowercase: bool, strip_punctuation: bool, strip_numbers: bool,
                     strip_special: bool, strip_accents) -> list[str]:
    """The words of the normalised text (options already checked)."""
    if lowercase:
        text = text.lower()
    if strip_punctuation and "\u2019" in text:
        # The typographic apostrophe follows the same rule as "'"; unify it first so that
        # strip_accents="ascii" cannot delete it and glue "it’s" into "its".
        text = text.replace("\u2019", "'")
    if strip_accents is not None and not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        if strip_accents == "ascii":
            text = text.encode("ascii", "ignore").decode("ascii")
        else:
            text = text.translate(_MARKS)
    if strip_punctuation or strip_numbers or strip_special:
        text = text.translate(_removal_table(strip_punctuation, strip_numbers, strip_special))
    words = text.split()
    if strip_punctuation and "'" in text:
        words = [part for w in words for part in (_split_apostrophes(w) if "'" in w else (w,))]
    return words


def normalize(text: str, *, lowercase: bool = True, strip_punctuation: bool = True,
              strip_numbers: bool = True, strip_special: bool = True, strip_accents=None) -> str:
    """Normalises one text; see docs/text.md for the exact definitions.

    Steps, in order: ``lowercase`` (``str.lower``); ``strip_accents`` ("unicode": NFKD then drop
    non-spacing marks, so ``é`` -> ``e`` while ``ß`` stays; "ascii": NFKD then drop every
    non-ASCII character, so non-Latin scripts vanish); then each enabled class of characters
    (punctuation, numbers, special = symbols, emoji, control/private/unassigned) is replaced by
    a space, keeping apostrophes between two letters; finally runs of whitespace become one
    space and the ends are trimmed. Letters of every script are letters, never "special".
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    _check_options(lowercase, strip_punctuation, strip_numbers, strip_special, strip_accents)
    return " ".join(_normalize_words(text, lowercase, strip_punctuation, strip_numbers,
                                     strip_special, strip_accents))
