"""normalize, stop words and tokenize."""
import unicodedata
import warnings

import pytest

from rnnkit.text import Tokenizer, english_stop_words, normalize, tokenize

# ---------------------------------------------------------------- normalize


def test_normalize_defaults():
    assert normalize("Hello, World! It's 2024.") == "hello world it's"
    assert normalize("  many\t\nspaces \u00a0 here ") == "many spaces here"
    assert normalize("end.Start") == "end start"  # removed characters become a space
    assert normalize("e-mail x_y a/b") == "e mail x y a b"


def test_normalize_unicode_letters_are_letters():
    assert normalize("Naïve café — 東京 Ελληνικά русский") == "naïve café 東京 ελληνικά русский"
    # decomposed accents (letter + combining mark) stay inside the word
    assert normalize("cafe\u0301") == "cafe\u0301"
    assert normalize("emoji 😀 snow☃man €5 ±") == "emoji snow man"


def test_normalize_each_switch():
    text = "A+B=3, ok?"
    assert normalize(text, lowercase=False) == "A B ok"
    assert normalize(text, strip_punctuation=False) == "a b , ok?"
    assert normalize(text, strip_numbers=False) == "a b 3 ok"
    assert normalize(text, strip_special=False) == "a+b= ok"
    assert normalize(text, lowercase=False, strip_punctuation=False, strip_numbers=False,
                     strip_special=False) == "A+B=3, ok?"
    assert normalize("½ Ⅻ ٣", strip_numbers=True) == ""  # No, Nl and non-ASCII Nd are numbers


def test_normalize_apostrophes():
    assert normalize("don’t rock'n'roll") == "don't rock'n'roll"
    assert normalize("'quoted' dogs' 'tis") == "quoted dogs tis"
    assert normalize("it’s", strip_accents="ascii") == "it's"
    assert normalize("90's") == "s"


def test_normalize_accents():
    assert normalize("Crème Brûlée Straße", strip_accents="unicode") == "creme brulee straße"
    assert normalize("Crème Brûlée Straße", strip_accents="ascii") == "creme brulee strae"
    assert normalize("東京 café", strip_accents="ascii") == "cafe"
    assert normalize("東京 café", strip_accents="unicode") == "東京 cafe"


def test_normalize_format_characters_are_deleted():
    assert normalize("co\u00adoperate zero\u200bwidth") == "cooperate zerowidth"
    assert normalize("co\u00adoperate", strip_special=False) == "co\u00adoperate"


def test_normalize_matches_a_per_character_definition():
    # Every code point of the BMP, alone between two letters, against the documented rule.
    for cp in range(0x10000):
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if ch.isspace() or cat[0] in "NPS" or cat in ("Co", "Cs", "Cn", "Cc"):
            expected = "a b"
        elif cat == "Cf":
            expected = "ab"
        else:  # letters and marks
            expected = "a" + ch + "b"
        if ch in "'\u2019":
            expected = "a'b"
        assert normalize("a" + ch + "b", lowercase=False) == expected, hex(cp)


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["a"]])
def test_normalize_rejects_non_strings(bad):
    with pytest.raises(TypeError, match="text must be a str"):
        normalize(bad)


def test_normalize_rejects_bad_options():
    with pytest.raises(ValueError, match="strip_accents"):
        normalize("x", strip_accents="latin")
    with pytest.raises(TypeError, match="lowercase must be a bool"):
        normalize("x", lowercase="yes")


# ---------------------------------------------------------------- stop words


def test_english_stop_words():
    words = english_stop_words()
    assert isinstance(words, frozenset)
    assert 150 <= len(words) <= 350
    assert {"the", "and", "of", "don't", "it's", "we've"} <= words
    assert all(w == w.lower() and " " not in w for w in words)
    extended = english_stop_words() | {"patient", "doctor"}
    assert "patient" in extended and "the" in extended


def test_english_stop_words_all_matchable_with_defaults():
    for w in english_stop_words():
        assert tokenize(w) == [w], w
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Tokenizer(stop_words="english")
        Tokenizer(stop_words="english", strip_numbers=False, strip_accents="ascii")


def test_unmatchable_stop_words_warn():
    with pytest.warns(UserWarning, match=r"can never match.*'The'.*'e-mail'"):
        toks = tokenize("The e-mail arrived", stop_words=["The", "e-mail", "arrived"])
    assert toks == ["the", "e", "mail"]
    with pytest.warns(UserWarning, match="can never match"):
        Tokenizer(stop_words=["naïve"], strip_accents="ascii")


def test_stop_words_bad_input():
    with pytest.raises(ValueError, match="stop_words must be 'english'"):
        tokenize("x", stop_words="french")
    with pytest.raises(TypeError, match="stop_words must contain only str"):
        tokenize("x", stop_words=["a", 3])
    with pytest.raises(TypeError, match="stop_words must be"):
        tokenize("x", stop_words=5)


# ---------------------------------------------------------------- tokenize


def test_tokenize_words_and_stop_words():
    text = "The state of the art isn’t cheap; don't panic!"
    assert tokenize(text) == ["the", "state", "of", "the", "art", "isn't", "cheap", "don't", "panic"]
    assert tokenize(text, stop_words="english") == ["state", "art", "cheap", "panic"]
    assert tokenize(text, stop_words=english_stop_words() | {"cheap"}) == ["state", "art", "panic"]


def test_tokenize_ngrams_after_stop_words():
    toks = tokenize("the state of the art", stop_words="english", ngram_range=(1, 3))
    assert toks == ["state", "art", "state art"]
    assert tokenize("a b c d", ngram_range=(2, 3)) == ["a b", "b c", "c d", "a b c", "b c d"]
    assert tokenize("a", ngram_range=(2, 2)) == []


def test_tokenize_min_token_len():
    assert tokenize("a bb ccc", min_token_len=2) == ["bb", "ccc"]
    assert tokenize("a bb ccc", min_token_len=3, ngram_range=(1, 2)) == ["ccc"]


def test_tokenize_char_ngrams():
    assert tokenize("Ab, cd", analyzer="char", ngram_range=(2, 2)) == ["ab", "b ", " c", "cd"]
    assert tokenize("ab cd", analyzer="char_wb", ngram_range=(3, 3)) == [" ab", "ab ", " cd", "cd "]
    assert tokenize("the cat", analyzer="char_wb", ngram_range=(4, 4), stop_words="english") == [" cat", "cat "]


def test_tokenize_bad_input():
    with pytest.raises(TypeError, match="text must be a str"):
        tokenize(None)
    with pytest.raises(ValueError, match="ngram_range"):
        tokenize("x", ngram_range=(2, 1))
    with pytest.raises(ValueError, match="ngram_range"):
        tokenize("x", ngram_range=(0, 1))
    with pytest.raises(TypeError, match="ngram_range"):
        tokenize("x", ngram_range=2)
    with pytest.raises(TypeError, match="ngram_range"):
        tokenize("x", ngram_range=(1.0, 2))
    with pytest.raises(ValueError, match="min_token_len"):
        tokenize("x", min_token_len=0)
    with pytest.raises(ValueError, match="analyzer"):
        tokenize("x", analyzer="sentence")


def test_tokenizer_options_round_trip():
    tok = Tokenizer(stop_words={"b", "a"}, ngram_range=(1, 2), strip_accents="unicode")
    opts = tok.get_options()
    assert opts["stop_words"] == ["a", "b"]
    assert Tokenizer(**opts)("a b c d é") == tok("a b c d é") == ["c", "d", "e", "c d", "d e"]


# ---------------------------------------------------------------- properties

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_property_tokens_are_clean_words(text):
    out = normalize(text)
    assert normalize(out) == out  # idempotent
    assert out == out.strip() and "  " not in out
    for tok in tokenize(text):
        assert tok and not any(c.isspace() for c in tok)
        assert tok == tok.lower()
        for i, c in enumerate(tok):
            if c == "'":  # only in-word apostrophes survive
                assert 0 < i < len(tok) - 1
            else:
                assert unicodedata.category(c)[0] in "LM", (tok, c)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["alpha", "beta", "the", "of", "gamma", "x"]), max_size=12),
       st.integers(1, 3), st.integers(0, 2))
def test_property_ngram_counts(words, lo, extra):
    hi = lo + extra
    text = " ".join(words)
    kept = [w for w in words if w not in english_stop_words()]
    toks = tokenize(text, stop_words="english", ngram_range=(lo, hi))
    assert len(toks) == sum(max(0, len(kept) - n + 1) for n in range(lo, hi + 1))
    assert all(len(t.split(" ")) in range(lo, hi + 1) for t in toks)
