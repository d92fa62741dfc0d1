"""English stop words written for rnnkit, and the check that every stop word can match a token.

The list holds common English function words: articles and determiners, pronouns, auxiliary
and modal verbs, prepositions, conjunctions, question words, quantifiers and frequent
adverbs. Contractions are written the way ``normalize`` produces them: lowercase with an ASCII
apostrophe kept inside the word (``don't``, ``it's``, ``we've``). Negations (``no``, ``not``,
``nor``, ``n't`` forms) are included; drop them for sentiment tasks::

    english_stop_words() - {"no", "not", "nor", "don't", "isn't"}
"""
from __future__ import annotations

import functools
import warnings

__all__ = ["english_stop_words"]

# Grouped by kind so that reviewers can judge each entry; kept in this file only.
_ARTICLES_DETERMINERS = """
a an the this that these those some any each every either neither no another other others
such own same both all half several enough many much more most few fewer less least
"""
_PRONOUNS = """
i me my mine myself we us our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves
one oneself who whom whose which what whoever whatever whichever
someone somebody something anyone anybody anything everyone everybody everything
nobody nothing none
"""
_AUXILIARIES_MODALS = """
be am is are was were been being have has had having do does did doing done
can could may might must shall should will would ought
"""
_PREPOSITIONS = """
about above across after against along amid among around as at before behind below beneath
beside besides between beyond by despite down during except for from in inside into like
near of off on onto out outside over past per since than through throughout till to toward
towards under underneath unlike until up upon via with within without
"""
_CONJUNCTIONS = """
and but or nor so yet if unless because although though while whereas whether once
whenever wherever
"""
_QUESTION_WORDS = """
how when where why
"""
_ADVERBS = """
not very too also just only even still already again ever never always often sometimes
usually here there then now thus hence therefore however otherwise else instead rather
quite almost perhaps maybe indeed really soon later yes
"""
# Contractions as the tokenizer keeps them ("don't" stays one token).
_CONTRACTIONS = """
i'm i've i'll i'd you're you've you'll you'd he's he'll he'd she's she'll she'd
it's it'll it'd we're we've we'll we'd they're they've they'll they'd
that's that'll there's there'll here's who's who'll what's where's when's why's how's let's
isn't aren't wasn't weren't hasn't haven't hadn't doesn't don't didn't
can't cannot couldn't won't wouldn't shan't shouldn't mustn't mightn't needn't
"""

_ENGLISH = frozenset(
    " ".join((_ARTICLES_DETERMINERS, _PRONOUNS, _AUXILIARIES_MODALS, _PREPOSITIONS, _CONJUNCTIONS,
              _QUESTION_WORDS, _ADVERBS, _CONTRACTIONS)).split()
)


def english_stop_words() -> frozenset[str]:
    """rnnkit's English stop words (a frozenset; extend with ``| {"patient", "doctor"}``)."""
    return _ENGLISH


def resolve_stop_words(stop_words) -> frozenset[str]:
    """``"english"`` | iterable of str | None -> frozenset (TypeError/ValueError on bad input)."""
    if stop_words is None:
        return frozenset()
    if isinstance(stop_words, str):
        if stop_words == "english":
            return _ENGLISH
        raise ValueError(f"stop_words must be 'english', an iterable of str or None, got the string "
                         f"{stop_words!r} (wrap a single word in a list: [{stop_words!r}])")
    try:
        words = frozenset(stop_words)
    except TypeError:
        raise TypeError(f"stop_words must be 'english', an iterable of str or None, "
                        f"got {type(stop_words).__name__}") from None
    bad = [w for w in words if not isinstance(w, str)]
    if bad:
        raise TypeError(f"stop_words must contain only str, got {bad[0]!r} ({type(bad[0]).__name__})")
    return words


@functools.lru_cache(maxsize=64)
def unmatchable_stop_words(stop_words: frozenset, normalize_options: tuple) -> tuple[str, ...]:
    """Stop words that normalisation can never produce as one token, sorted.

    A stop word matches only if normalising it gives exactly itself as a single word; e.g.
    "We've" (uppercase, with lowercase=True), "e-mail" (the hyphen splits it) or "naïve" with
    strip_accents="ascii" can never be removed.
    """
    from .normalize import _normalize_words

    return tuple(sorted(w for w in stop_words if _normalize_words(w, *normalize_options) != [w]))


def warn_unmatchable(stop_words: frozenset, normalize_options: tuple, stacklevel: int = 3) -> None:
    """Warns (UserWarning) when some stop words can never match a token."""
    if not stop_words:
        return
    bad = unmatchable_stop_words(stop_words, normalize_options)
    if bad:
        shown = ", ".join(repr(w) for w in bad[:10]) + (" ..." if len(bad) > 10 else "")
        warnings.warn(
            f"{len(bad)} stop word(s) can never match a token because normalisation changes or "
            f"splits them: {shown}. Write stop words the way normalize() writes tokens "
            f"(e.g. lowercase, no punctuation other than an in-word apostrophe).",
            UserWarning, stacklevel=stacklevel)

