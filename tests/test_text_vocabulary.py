"""Vocabulary and to_sequences."""
import json

import numpy as np
import pytest

from rnnkit.text import Tokenizer, Vocabulary, to_sequences, tokenize

STREAMS = [["b", "a", "c"], ["a", "d", "b"], ["e", "a"]]


def test_order_frequency_then_first_appearance():
    v = Vocabulary(STREAMS)
    assert v.tokens == ["<pad>", "<unk>", "a", "b", "c", "d", "e"]
    assert v.counts == [0, 0, 3, 2, 1, 1, 1]
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, None, None)
    assert len(v) == 7 and "a" in v and "zzz" not in v
    assert v["a"] == 2 and v["zzz"] == 1
    assert list(v) == v.tokens


def test_min_freq_max_size_and_specials():
    v = Vocabulary(STREAMS, min_freq=2)
    assert v.tokens == ["<pad>", "<unk>", "a", "b"]
    v = Vocabulary(STREAMS, max_size=5, bos=True, eos=True)
    assert v.tokens == ["<pad>", "<unk>", "<bos>", "<eos>", "a"]
    assert (v.bos_id, v.eos_id) == (2, 3)
    assert Vocabulary([["<unk>", "x", "<pad>"]]).tokens == ["<pad>", "<unk>", "x"]


def test_encode_decode():
    v = Vocabulary(STREAMS, bos=True, eos=True)
    ids = v.encode(["a", "zzz", "e"])
    assert ids == [2, 4, 1, 8, 3]
    assert v.encode(["a"], add_bos=False, add_eos=False) == [4]
    assert v.decode(ids) == ["a", "<unk>", "e"]
    assert v.decode(ids + [0, 0], skip_specials=False) == ["<bos>", "a", "<unk>", "e", "<eos>", "<pad>", "<pad>"]
    assert v.decode(np.array(ids, dtype=np.int32)) == ["a", "<unk>", "e"]
    assert v.decode([]) == []
    assert Vocabulary(STREAMS).encode([]) == []


def test_bad_input():
    v = Vocabulary(STREAMS)
    with pytest.raises(IndexError, match=r"id 99 at position 2 is out of range"):
        v.decode([2, 3, 99])
    with pytest.raises(IndexError, match=r"id -1 at position 0"):
        v.decode([-1])
    with pytest.raises(TypeError, match="ids must be integers"):
        v.decode([1.0, 2.0])
    with pytest.raises(TypeError, match="single str"):
        v.encode("a b c")
    with pytest.raises(TypeError, match="single str"):
        Vocabulary(["abc", "de"])
    with pytest.raises(TypeError, match=r"token_streams\[1\] must be a list of str tokens, got int"):
        Vocabulary([["a"], 5])
    with pytest.raises(TypeError, match="tokens must be str"):
        Vocabulary([["a", 3]])
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary(STREAMS, min_freq=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary(STREAMS, max_size=1)
    with pytest.raises(ValueError, match="no <bos>"):
        v.encode(["a"], add_bos=True)
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        Vocabulary.from_texts(["ok", None])


def test_from_texts_and_save_load(tmp_path):
    texts = ["The cat sat on the mat.", "The dog sat!", "Ünïcode dog"]
    v = Vocabulary.from_texts(texts, stop_words="english", ngram_range=(1, 2), eos=True)
    assert v.tokens[:5] == ["<pad>", "<unk>", "<eos>", "sat", "dog"]
    assert "cat sat" in v and "the" not in v
    path = tmp_path / "vocab.json"
    v.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["tokens"] == v.tokens and "ünïcode" in data["tokens"]
    w = Vocabulary.load(path)
    assert w == v and w.tokens == v.tokens and w.eos_id == 2
    assert w.encode_text("the dog sat") == v.encode_text("the dog sat") == [4, 3, v["dog sat"], 2]
    bad = tmp_path / "bad.json"
    bad.write_text('{"tokens": []}')
    with pytest.raises(ValueError, match="not a saved rnnkit Vocabulary"):
        Vocabulary.load(bad)


def test_to_sequences_post_and_pre():
    v = Vocabulary([["a", "b", "c", "d"]])  # ids a=2 b=3 c=4 d=5
    toks = [["a", "b", "c", "d"], ["b"], []]
    ids, lengths = to_sequences(toks, v)
    assert ids.dtype == np.int64 and lengths.dtype == np.int64
    np.testing.assert_array_equal(ids, [[2, 3, 4, 5], [3, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(lengths, [4, 1, 0])
    ids, lengths = to_sequences(toks, v, max_len=3, padding="pre", truncating="pre")
    np.testing.assert_array_equal(ids, [[3, 4, 5], [0, 0, 3], [0, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    ids, _ = to_sequences(toks, v, max_len=2, truncating="post")
    np.testing.assert_array_equal(ids, [[2, 3], [3, 0], [0, 0]])


def test_to_sequences_raw_texts_use_the_vocabulary_tokenizer():
    v = Vocabulary.from_texts(["Hello world", "hello there"], stop_words=["there"], bos=True, eos=True)
    ids, lengths = to_sequences(["HELLO, World!", "unknown there"], v)
    np.testing.assert_array_equal(ids, [[2, 4, 5, 3], [2, 1, 3, 0]])
    np.testing.assert_array_equal(lengths, [4, 3])


def test_to_sequences_bad_input():
    v = Vocabulary(STREAMS)
    with pytest.raises(ValueError, match="empty"):
        to_sequences([], v)
    with pytest.raises(TypeError, match="single str"):
        to_sequences("a b", v)
    with pytest.raises(TypeError, match=r"texts_or_tokens\[1\]"):
        to_sequences(["a", 5], v)
    with pytest.raises(TypeError, match=r"texts_or_tokens\[0\]"):
        to_sequences([["a", 1]], v)
    with pytest.raises(TypeError, match="vocab must be"):
        to_sequences(["a"], {"a": 1})
    with pytest.raises(ValueError, match="max_len"):
        to_sequences(["a"], v, max_len=0)
    with pytest.raises(ValueError, match="padding"):
        to_sequences(["a"], v, padding="left")
    with pytest.raises(ValueError, match="truncating"):
        to_sequences(["a"], v, truncating="middle")


def test_real_corpus_round_trip():
    topics = pytest.importorskip("pydoc_data.topics").topics
    texts = [p for k in sorted(topics) for p in topics[k].split("\n\n") if p.strip()]
    tok = Tokenizer()
    v = Vocabulary.from_texts(texts, tokenizer=tok, min_freq=2)
    ids, lengths = to_sequences(texts[:200], v, max_len=64)
    assert ids.shape == (200, 64) and (lengths <= 64).all()
    for row, n, text in zip(ids[:50], lengths[:50], texts[:50]):
        assert (row[n:] == 0).all() and (row[:n] > 0).all()
        expected = [t if t in v else "<unk>" for t in tok(text)][:64]
        assert v.decode(row) == expected


def test_from_texts_rejects_an_empty_corpus_as_to_sequences_does():
    with pytest.raises(ValueError, match="texts is empty"):
        Vocabulary.from_texts([])
    assert len(Vocabulary()) == 2  # building from no token streams on purpose still works
