"""Property-based fuzzing of every file reader (rnnkit.load, load_checkpoint, Vocabulary.load)
with random, truncated, bit-flipped and structurally edited bytes, of rnnkit.text with
arbitrary Unicode, and of the estimators' fit/predict on small random data. Only the
documented exceptions: FormatError (rnnkit.load, checkpoints), ValueError (Vocabulary.load,
bad text or labels), TypeError for wrong types; never a crash, a hang or an unbounded
allocation. Profiles: tests/fuzz_support.py."""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import assume, given, strategies as st  # noqa: E402

import rnnkit  # noqa: E402
from rnnkit import FormatError, nn  # noqa: E402
from rnnkit.persistence import DOCUMENT_ENTRY  # noqa: E402
from rnnkit.text import BagOfWords, Tokenizer, Vocabulary, normalize, to_sequences, tokenize  # noqa: E402
from rnnkit.train import load_checkpoint, save_checkpoint  # noqa: E402
from rnnkit.train.checkpoint import CHECKPOINT_FORMAT  # noqa: E402

from fuzz_support import fuzz_settings, watchdog  # noqa: E402

# the readers' and estimators' own warnings (odd stop words in an edited file, no corpus for
# embeddings) are expected here; only exceptions matter
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

_DIR = tempfile.mkdtemp(prefix="rnnkit-fuzz-")


def _saved(obj) -> bytes:
    path = os.path.join(_DIR, "sample.rnnkit")
    rnnkit.save(obj, path)
    with open(path, "rb") as f:
        return f.read()


def _samples():
    vocab = Vocabulary([["a", "b", "b", "ç", "\u2028"]])
    checkpoint = os.path.join(_DIR, "sample.ckpt")
    save_checkpoint(checkpoint, {"format": CHECKPOINT_FORMAT, "epoch": 1, "batch": 2,
                                 "params": {"W": np.arange(6.0).reshape(2, 3)}, "rng": (1, [2, 3]),
                                 "tags": {"x", "y"}})
    with open(checkpoint, "rb") as f:
        ckpt = f.read()
    vocab_path = os.path.join(_DIR, "vocab.json")
    vocab.save(vocab_path)
    with open(vocab_path, "rb") as f:
        vocab_json = f.read()
    return {
        "lstm": _saved(nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2, seed=0)),
        "seq": _saved(nn.Sequential(nn.Embedding(10, 3, seed=1), nn.GRU(3, 2, seed=2),
                                    nn.LastStep(), nn.Linear(2, 2, seed=3))),
        "vocab": _saved(vocab),
        "tokenizer": _saved(Tokenizer(ngram_range=(1, 2))),
        "checkpoint": ckpt,
        "vocab_json": vocab_json,
    }


SAMPLES = _samples()
BINARY = ["lstm", "seq", "vocab", "tokenizer", "checkpoint"]


def _read(kind: str, data: bytes, name="f"):
    """Reads `data` with the reader of `kind`; returns what it built or the documented
    exception it raised (anything else propagates and fails the test)."""
    path = os.path.join(_DIR, name)
    with open(path, "wb") as f:
        f.write(data)
    with watchdog(120):
        if kind == "vocab_json":
            try:
                return Vocabulary.load(path)
            except ValueError as exc:
                return exc
        reader = load_checkpoint if kind == "checkpoint" else rnnkit.load
        try:
            return reader(path)
        except FormatError as exc:
            return exc


def test_samples_load_unchanged():
    for kind, data in SAMPLES.items():
        assert not isinstance(_read(kind, data), Exception), kind


@fuzz_settings
@given(st.sampled_from(list(SAMPLES)), st.data())
def test_truncated_files(kind, data):
    blob = SAMPLES[kind]
    cut = data.draw(st.integers(0, len(blob) - 1))
    result = _read(kind, blob[:cut])
    assert isinstance(result, Exception), "a truncated file loaded"


@fuzz_settings
@given(st.sampled_from(list(SAMPLES)), st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 7)),
                                                min_size=1, max_size=8))
def test_bit_flipped_files(kind, flips):
    blob = bytearray(SAMPLES[kind])
    for where, bit in flips:
        blob[where % len(blob)] ^= 1 << bit
    _read(kind, bytes(blob))


@fuzz_settings
@given(st.sampled_from(list(SAMPLES)), st.binary(max_size=4096), st.integers(0, 2**31))
def test_random_and_spliced_bytes(kind, junk, where):
    blob = SAMPLES[kind]
    at = where % (len(blob) + 1)
    _read(kind, junk)
    _read(kind, blob[:at] + junk + blob[at + len(junk):])


# ---- structure-aware: valid zips whose JSON document is edited -----------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    | st.builds(lambda k, v: {k: v}, st.sampled_from(["__array__", "__dtype__", "__tuple__", "__set__",
                                                      "__dict__", "__object__", "class", "args"]), inner),
    max_leaves=20)


def _nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, path + (i,))


def _replace(value, path, new):
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


def _entries(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _rezip(entries: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    return buffer.getvalue()


@fuzz_settings
@given(st.sampled_from(BINARY), st.data(), json_values)
def test_edited_documents(kind, data, new_value):
    entries = _entries(SAMPLES[kind])
    document = json.loads(entries[DOCUMENT_ENTRY].tobytes().decode("utf-8"))
    paths = list(_nodes(document))
    path = data.draw(st.sampled_from(paths))
    document = _replace(document, path, new_value)
    entries[DOCUMENT_ENTRY] = np.frombuffer(json.dumps(document).encode("utf-8"), np.uint8)
    _read(kind, _rezip(entries))


@fuzz_settings
@given(st.sampled_from(BINARY), st.data())
def test_edited_arrays(kind, data):
    """Arrays replaced by others of another dtype, shape or kind (strings, bools, 0-d)."""
    entries = _entries(SAMPLES[kind])
    names = sorted(n for n in entries if n != DOCUMENT_ENTRY)
    assume(names)
    name = data.draw(st.sampled_from(names))
    entries[name] = data.draw(st.sampled_from([
        np.zeros(0), np.array(1.5), np.array(["a", "b"]), np.ones((2, 2), bool),
        np.full(entries[name].shape, np.nan), entries[name].astype(np.float16),
        np.zeros(entries[name].shape + (1,)), np.zeros((3, 1, 2), np.int8)]))
    _read(kind, _rezip(entries))


def test_deeply_nested_documents_are_format_errors():
    """Regression: a checkpoint value nested ~900 levels (JSON accepts it, decoding it exceeded
    Python's recursion limit) raised RecursionError from load_checkpoint; Vocabulary.load let
    RecursionError and UnicodeDecodeError through without naming the file."""
    for depth in (900, 5000):
        text = ('{"format": "rnnkit", "format_version": 1, "checkpoint": ' + "[" * depth + "]" * depth + "}")
        blob = _rezip({DOCUMENT_ENTRY: np.frombuffer(text.encode(), np.uint8)})
        assert isinstance(_read("checkpoint", blob), FormatError)
        assert isinstance(_read("lstm", blob), FormatError)
        assert isinstance(_read("vocab_json", ("[" * depth + "]" * depth).encode()), ValueError)
    assert "not a saved rnnkit Vocabulary" in str(_read("vocab_json", b"\xff\xfe{", name="bad.json"))


def test_undecodable_checkpoint_values_are_format_errors():
    """Regression: a set holding a list, a dict keyed by a list, an unknown dtype name raised
    TypeError from load_checkpoint instead of FormatError."""
    for value in ({"__set__": [[1]]}, {"__dict__": [[[1], 2]]}, {"__dtype__": "no-such-dtype"}):
        text = json.dumps({"format": "rnnkit", "format_version": 1, "checkpoint": value})
        blob = _rezip({DOCUMENT_ENTRY: np.frombuffer(text.encode(), np.uint8)})
        assert isinstance(_read("checkpoint", blob), FormatError), value


def test_zip_bomb_is_refused_before_reading():
    """A member of 64 MiB of deflated zeros in a file of ~100 KiB (a real bomb declares
    gigabytes the same way): FormatError before it is decompressed."""
    entries = _entries(SAMPLES["lstm"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, value in entries.items():
            with z.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, value)
        with z.open("bomb.npy", "w") as f:
            np.lib.format.write_array_header_2_0(f, {"descr": "<f8", "fortran_order": False,
                                                     "shape": (2**23,)})
            chunk = bytes(1 << 22)
            for _ in range(2**26 // len(chunk)):
                f.write(chunk)
    assert len(buffer.getvalue()) < 2**20
    result = _read("lstm", buffer.getvalue())
    assert isinstance(result, FormatError) and "refused before reading" in str(result)


# ---- rnnkit.text --------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None), max_size=200) | st.sampled_from(
    ["", " ", "\x00", "a" * 100_000, "\u200b\u200b", "é\u0301" * 50, "\ud7ff\ue000", "\t\n\r\x0b\x0c"])


@fuzz_settings
@given(st.lists(any_text, max_size=6), st.booleans(), st.sampled_from(["word", "char", "char_wb"]),
       st.integers(1, 3))
def test_text_pipeline_on_arbitrary_unicode(docs, lowercase, analyzer, n):
    with watchdog(120):
        for doc in docs:
            assert isinstance(normalize(doc, lowercase=lowercase), str)
            tokens = tokenize(doc, analyzer=analyzer, ngram_range=(1, n), lowercase=lowercase)
            assert all(isinstance(t, str) for t in tokens)
        try:
            vocab = Vocabulary.from_texts(docs, analyzer=analyzer) if hasattr(Vocabulary, "from_texts") \
                else Vocabulary([tokenize(d, analyzer=analyzer) for d in docs])
        except ValueError:
            assert not docs  # "texts is empty"
            return
        ids, lengths = to_sequences(docs, vocab, max_len=5)
        assert ids.shape == (len(docs), 5) and lengths.shape == (len(docs),)
        path = os.path.join(_DIR, "fuzz_vocab.json")
        vocab.save(path)
        assert Vocabulary.load(path) == vocab
        try:
            bow = BagOfWords(analyzer=analyzer).fit(docs)
            assert bow.transform(docs).shape[0] == len(docs)
        except ValueError:
            pass  # documented: no tokens in any document / empty vocabulary


@fuzz_settings
@given(st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=3), st.binary(max_size=5),
                 st.lists(st.one_of(st.none(), st.integers(), st.text(max_size=3)), max_size=3)))
def test_text_functions_reject_non_text(value):
    for call in (lambda: tokenize(value), lambda: normalize(value), lambda: BagOfWords().fit(value),
                 lambda: Vocabulary(value)):
        try:
            call()
        except (TypeError, ValueError):
            pass


# ---- models' fit / predict ----------------------------------------------------------------

@fuzz_settings
@given(st.lists(any_text, min_size=0, max_size=8), st.data())
def test_text_estimators_fit_predict_small(texts, data):
    from rnnkit.models import BagOfWordsClassifier, TextClassifier
    labels = data.draw(st.lists(st.sampled_from([0, 1, "a", None, 2.5]), min_size=len(texts),
                                max_size=len(texts) + data.draw(st.integers(0, 1))))
    for est in (BagOfWordsClassifier(hidden_sizes=(4,), epochs=1, early_stopping=False),
                TextClassifier(embedding_dim=4, hidden_size=3, epochs=1, max_len=6, early_stopping=False,
                               batch_size=4)):
        with watchdog(120):
            try:
                est.fit(texts, labels)
            except (TypeError, ValueError):
                continue
            assert len(est.predict(texts)) == len(texts)
            try:
                est.predict(data.draw(st.lists(any_text, max_size=3)))
            except ValueError:
                pass  # documented: no documents to predict


@fuzz_settings
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=0, max_size=40),
       st.integers(1, 4), st.integers(1, 3))
def test_forecaster_fit_predict_small(series, input_len, horizon):
    from rnnkit.models import Forecaster
    est = Forecaster(input_len, horizon, hidden_size=3, epochs=1, batch_size=4)
    with watchdog(120):
        try:
            est.fit(np.asarray(series, np.float32))
        except (TypeError, ValueError):
            return
        windows = np.asarray(series[-input_len:], np.float32)[None, :]
        out = est.predict_windows(windows)
        assert np.shape(out)[0] == 1
