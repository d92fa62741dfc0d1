"""rnnkit.save / rnnkit.load: round trips are bit for bit, malformed files raise FormatError."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import rnnkit
from rnnkit import nn
from rnnkit.persistence import DOCUMENT_ENTRY, FORMAT_VERSION
from rnnkit.text import Vocabulary

from child_process import run_python

RNG = np.random.default_rng(0)
IDS = RNG.integers(0, 12, (3, 7))
LENGTHS = np.array([7, 4, 1])


def round_trip(obj, tmp_path):
    path = tmp_path / "saved.rnnkit"
    rnnkit.save(obj, path)
    return rnnkit.load(path)


def assert_same_outputs(a, b):
    assert type(a) is type(b)
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_outputs(x, y)
    else:
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


LAYERS = {
    "linear": (lambda: nn.Linear(5, 3, bias=False, dtype=np.float64, seed=1), RNG.standard_normal((4, 5))),
    "linear-time-major": (lambda: nn.Linear(5, 3, batch_first=False, seed=1),
                          RNG.standard_normal((7, 3, 5)).astype(np.float32)),
    "embedding": (lambda: nn.Embedding(12, 4, padding_idx=0, seed=2), IDS),
    "dropout": (lambda: nn.Dropout(0.25, seed=3), RNG.standard_normal((4, 5)).astype(np.float32)),
    "rnn-relu": (lambda: nn.RNN(5, 6, 2, nonlinearity="relu", skip="dense", seed=4),
                 RNG.standard_normal((3, 7, 5)).astype(np.float32)),
    "lstm-bidirectional-norm": (lambda: nn.LSTM(5, 6, 2, bidirectional=True, merge="sum", norm="layer",
                                                return_state=True, dtype=np.float64, seed=5),
                                RNG.standard_normal((3, 7, 5))),
    "gru-reset-before": (lambda: nn.GRU(5, 6, linear_before_reset=False, return_sequences=False, seed=6),
                         RNG.standard_normal((3, 7, 5)).astype(np.float32)),
    "gru-batchnorm": (lambda: nn.GRU(5, 6, 2, norm="batch", skip="residual", seed=7),
                      RNG.standard_normal((3, 7, 5)).astype(np.float32)),
    "sequential": (lambda: nn.Sequential(embed=nn.Embedding(12, 4, seed=1), rnn=nn.LSTM(4, 6, seed=2),
                                         pool=nn.MeanPool(), drop=nn.Dropout(0.1), out=nn.Linear(6, 2, seed=3)),
                   IDS),
    "sequential-positional": (lambda: nn.Sequential(nn.Embedding(12, 4), nn.RNN(4, 3), nn.LastStep()), IDS),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_round_trip_is_bit_identical(name, tmp_path):
    make, x = LAYERS[name]
    layer = make()
    if isinstance(layer, nn.GRU) and layer.norm == "batch":  # running statistics are buffers
        layer(x, training=True)
    loaded = round_trip(layer, tmp_path)
    assert type(loaded) is type(layer)
    kwargs = {} if isinstance(layer, (nn.Linear, nn.Dropout)) or name.startswith("embedding") else \
        {"lengths": LENGTHS}
    assert_same_outputs(layer(x, **kwargs), loaded(x, **kwargs))
    for key, value in layer.state_dict().items():
        assert loaded.state_dict()[key].tobytes() == value.tobytes()


def test_generator_states_are_restored(tmp_path):
    drop = nn.Dropout(0.5, seed=9)
    x = np.ones((4, 8), np.float32)
    drop(x, training=True)  # advance the generator: the saved state is not the seed's
    loaded = round_trip(drop, tmp_path)
    assert_same_outputs(drop(x, training=True), loaded(x, training=True))


def test_deprecated_rnn_mode_loads_without_warning(tmp_path, recwarn):
    with pytest.warns(FutureWarning):
        layer = nn.RNN(3, 4, mode="relu")
    recwarn.clear()
    loaded = round_trip(layer, tmp_path)
    assert loaded.nonlinearity == "relu" and not [w for w in recwarn if w.category is FutureWarning]


def test_vocabulary_round_trip(tmp_path):
    vocab = Vocabulary.from_texts(["the cat sat", "the dog ran fast"], bos=True, eos=True,
                                  ngram_range=(1, 2))
    loaded = round_trip(vocab, tmp_path)
    assert loaded == vocab and loaded.encode_text("the cat ran") == vocab.encode_text("the cat ran")


def test_user_subclass_is_refused_at_save(tmp_path):
    class MyLinear(nn.Linear):
        pass

    with pytest.raises(TypeError, match="not one of the classes"):
        rnnkit.save(MyLinear(2, 3), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_fresh_process_gives_identical_predictions(tmp_path):
    model, x = LAYERS["lstm-bidirectional-norm"]
    layer = model()
    rnnkit.save(layer, tmp_path / "lstm.rnnkit")
    np.save(tmp_path / "x.npy", x)
    expected = layer(x, lengths=LENGTHS)[0]
    code = ("import numpy as np, rnnkit, sys; d = sys.argv[1]; m = rnnkit.load(d + '/lstm.rnnkit'); "
            "y = m(np.load(d + '/x.npy'), lengths=np.array([7, 4, 1]))[0]; np.save(d + '/y.npy', y)")
    status, output = run_python(["-c", code, str(tmp_path)])
    assert status == 0, output
    assert np.load(tmp_path / "y.npy").tobytes() == expected.tobytes()


# ------------------------------------------------------------------------------- malformed files
@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.rnnkit"
    rnnkit.save(nn.Sequential(nn.Embedding(12, 4), nn.GRU(4, 3)), path)
    return path


def rewrite_document(path, change):
    """The file with its JSON document replaced by change(document)."""
    with np.load(path, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    document = json.loads(entries[DOCUMENT_ENTRY].tobytes())
    change(document)
    entries[DOCUMENT_ENTRY] = np.frombuffer(json.dumps(document).encode(), np.uint8)
    write_npz(path, entries)


def write_npz(path, entries):
    with open(path, "wb") as f:  # np.savez(path) would append ".npz" to the name
        np.savez(f, **entries)


def test_format_error_is_a_value_error():
    assert issubclass(rnnkit.FormatError, ValueError)
    assert {"save", "load", "FormatError"} <= set(rnnkit.__all__)


def test_truncated_file(saved):
    data = saved.read_bytes()
    for size in (0, 10, len(data) // 2, len(data) - 30):
        saved.write_bytes(data[:size])
        with pytest.raises(rnnkit.FormatError):
            rnnkit.load(saved)


def test_corrupted_bytes(saved):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = z.getinfo("a1.npy")  # flip a byte inside an array's data: the CRC catches it
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
    data[offset] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(rnnkit.FormatError, match="CRC|could not be read"):
        rnnkit.load(saved)


def test_wrong_format_version(saved):
    rewrite_document(saved, lambda d: d.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(rnnkit.FormatError, match="format version 2"):
        rnnkit.load(saved)


def test_plain_npz_is_not_rnnkit(tmp_path):
    np.savez(tmp_path / "plain.npz", weights=np.ones(3))
    with pytest.raises(rnnkit.FormatError, match="not an rnnkit file"):
        rnnkit.load(tmp_path / "plain.npz")
    np.save(tmp_path / "array.npy", np.ones(3))
    with pytest.raises(rnnkit.FormatError, match="not an rnnkit file"):
        rnnkit.load(tmp_path / "array.npy")


class _CreatesFile:
    """Unpickling this calls open(path, 'w'): proof that a loader unpickled it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_payloads_are_never_unpickled(tmp_path, saved):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_CreatesFile(str(marker)))
    (tmp_path / "raw.pkl").write_bytes(payload)
    with pytest.raises(rnnkit.FormatError):
        rnnkit.load(tmp_path / "raw.pkl")
    # an object array in an otherwise valid rnnkit file: np.save pickles it
    with np.load(saved, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    entries["a0"] = np.array([_CreatesFile(str(marker))], dtype=object)
    write_npz(saved, entries)
    with pytest.raises(rnnkit.FormatError, match="pickle"):
        rnnkit.load(saved)
    assert not marker.exists()


def test_class_not_in_registry(saved):
    rewrite_document(saved, lambda d: d["object"].update({"class": "os.system"}))
    with pytest.raises(rnnkit.FormatError, match="does not construct"):
        rnnkit.load(saved)


def test_unknown_generator_name_is_refused(saved):
    def evil(document):
        document["object"]["rng"]["__dict__"][0][1]["__dict__"][0][1] = "seed"
    rewrite_document(saved, evil)
    with pytest.raises(rnnkit.FormatError, match="generator"):
        rnnkit.load(saved)


def test_configuration_rejected_by_the_constructor(saved):
    rewrite_document(saved, lambda d: d["object"]["args"][0]["__object__"]["args"].__setitem__(0, -1))
    with pytest.raises(rnnkit.FormatError, match="could not be rebuilt"):
        rnnkit.load(saved)


def test_state_that_does_not_fit(saved):
    def drop_array(document):
        document["object"]["state"].popitem()
    rewrite_document(saved, drop_array)
    with pytest.raises(rnnkit.FormatError, match="could not be rebuilt"):
        rnnkit.load(saved)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        rnnkit.load(tmp_path / "absent")


# ------------------------------------------------------------------------------- models
from rnnkit import models  # noqa: E402


def word_vocabulary():
    return Vocabulary.from_texts(["a b c d", "b c e f", "g h a"], bos=True, eos=True)


MODELS = {
    "sequence-classifier": lambda: models.SequenceClassifier(12, 3, embedding_dim=4, hidden_size=5, cell="gru",
                                                              bidirectional=True, pooling="max", seed=1),
    "language-model": lambda: models.LanguageModel(len(word_vocabulary()), embedding_dim=4, hidden_size=6,
                                                   vocab=word_vocabulary(), level="word", seed=2),
    "mlp-classifier": lambda: models.MLPClassifier(6, 3, hidden_sizes=(5, 4), dropout=0.1, dtype=np.float64,
                                                   seed=3),
    "sequence-tagger": lambda: models.SequenceTagger(12, 4, embedding_dim=4, hidden_size=5, cell="rnn", seed=4),
    "vector-to-sequence": lambda: models.VectorToSequence(6, len(word_vocabulary()), embedding_dim=4,
                                                          hidden_size=5, vocab=word_vocabulary(), seed=5),
    "forecast-net": lambda: models.ForecastNet(2, 3, hidden_size=5, residual=True, seed=6),
}


def model_outputs(model):
    """What the model computes for a fixed input, by its kind."""
    if isinstance(model, models.LanguageModel):
        return model(IDS % len(model.vocab)), model.generate([2, 4], 5, seed=0)
    if isinstance(model, models.MLPClassifier):
        return (model(np.random.default_rng(1).standard_normal((4, 6))),)
    if isinstance(model, models.VectorToSequence):
        x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
        return model(x, IDS[:2] % model.vocab_size), model.generate(x, max_len=6, method="beam")
    if isinstance(model, models.ForecastNet):
        return (model(np.random.default_rng(1).standard_normal((3, 7, 2)).astype(np.float32)),)
    return (model(IDS, lengths=LENGTHS),)


def assert_same_results(a, b):
    if isinstance(a, np.ndarray):
        assert_same_outputs(a, b)
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_results(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_round_trip_is_bit_identical(name, tmp_path):
    model = MODELS[name]()
    loaded = round_trip(model, tmp_path)
    assert type(loaded) is type(model)
    assert_same_results(model_outputs(model), model_outputs(loaded))


def test_seq2seq_round_trip_with_vocabularies(tmp_path):
    src, tgt = word_vocabulary(), Vocabulary.from_texts(["x y z", "y w"], bos=True, eos=True)
    model = models.Seq2Seq(len(src), len(tgt), bos_id=tgt.bos_id, eos_id=tgt.eos_id, embedding_dim=4,
                           hidden_size=5, attention="additive", src_vocab=src, tgt_vocab=tgt, seed=7)
    loaded = round_trip(model, tmp_path)
    assert loaded.src_vocab == src and loaded.tgt_vocab == tgt
    source = IDS % len(src)
    assert_same_results(model.predict(source, src_lengths=LENGTHS, beam_width=3, max_len=6),
                        loaded.predict(source, src_lengths=LENGTHS, beam_width=3, max_len=6))


@pytest.mark.parametrize("strategy, scale", [("recursive", "standard"), ("direct", "minmax"), ("direct", None)])
def test_forecaster_round_trip_keeps_its_scaler(strategy, scale, tmp_path):
    t = np.arange(80, dtype=np.float64)
    series = np.stack([np.sin(t / 5) * 3 + 10, np.cos(t / 7)], axis=1)
    forecaster = models.Forecaster(8, 3, strategy=strategy, scale=scale, hidden_size=6, epochs=2, seed=1)
    forecaster.fit(series[:60])
    loaded = round_trip(forecaster, tmp_path)
    if scale is not None:
        assert_same_outputs(loaded.scaler_.center_, forecaster.scaler_.center_)
        assert_same_outputs(loaded.scaler_.scale_, forecaster.scaler_.scale_)
    assert loaded.history_ is None  # the training history is not saved
    assert_same_outputs(forecaster.predict(series[:70]), loaded.predict(series[:70]))


def test_unfitted_forecaster_and_scaler_round_trip(tmp_path):
    loaded = round_trip(models.Forecaster(5, 2, cell="gru", dtype=np.float64), tmp_path)
    assert loaded.model_ is None and loaded.cell == "gru" and loaded.dtype == np.float64
    assert round_trip(models.SeriesScaler("minmax"), tmp_path).method == "minmax"


# ------------------------------------------------------------------------------- estimators, BagOfWords
from rnnkit.text import BagOfWords  # noqa: E402

TEXTS = ["the match was won by the home team", "bake the bread with flour and salt",
         "the rocket reached orbit around the moon", "the coach praised the team",
         "boil the pasta and add salt", "a telescope saw a new planet"] * 3
LABELS = ["sport", "cooking", "space"] * 6
NEW_TEXTS = ["the team baked a rocket", "salt on the moon", "unknown words only"]


@pytest.mark.parametrize("make", [
    lambda: models.TextClassifier(epochs=2, embedding_dim=6, hidden_size=5, cell="lstm", early_stopping=False),
    lambda: models.TextClassifier(epochs=3, embedding_dim=6, hidden_size=5, init_embeddings="random",
                                  stop_words="english", random_state=3),
    lambda: models.BagOfWordsClassifier(epochs=2, hidden_sizes=(6,), ngram_range=(1, 2), early_stopping=False),
], ids=["text-classifier", "text-classifier-early-stopping", "bag-of-words-classifier"])
def test_estimator_round_trip_gives_identical_predictions(make, tmp_path):
    estimator = make().fit(TEXTS, LABELS)
    loaded = round_trip(estimator, tmp_path)
    assert loaded.get_params() == estimator.get_params()
    assert_same_outputs(estimator.predict_proba(NEW_TEXTS), loaded.predict_proba(NEW_TEXTS))
    assert list(loaded.predict(NEW_TEXTS)) == list(estimator.predict(NEW_TEXTS))
    assert loaded.classes_.dtype == estimator.classes_.dtype
    assert not hasattr(loaded, "history_")


def test_unfitted_estimator_round_trip(tmp_path):
    loaded = round_trip(models.TextClassifier(hidden_size=7, cell="rnn"), tmp_path)
    assert loaded.hidden_size == 7 and loaded.cell == "rnn" and not hasattr(loaded, "model_")


@pytest.mark.parametrize("options", [
    dict(weighting="tfidf", sublinear_tf=True, ngram_range=(1, 2), min_df=2),
    dict(weighting="binary", analyzer="char_wb", ngram_range=(2, 3), stop_words={"the", "a"}),
    dict(weighting="count", max_features=5, norm="l1", dtype=np.float32),
    dict(vocabulary=["team", "salt", "moon"]),
], ids=["tfidf", "binary-char", "count-l1", "fixed-vocabulary"])
def test_bag_of_words_round_trip(options, tmp_path):
    bow = BagOfWords(**options).fit(TEXTS)
    loaded = round_trip(bow, tmp_path)
    assert loaded.get_params() == bow.get_params()
    a, b = bow.transform(NEW_TEXTS), loaded.transform(NEW_TEXTS)
    assert (a != b).nnz == 0 and a.dtype == b.dtype
    assert list(loaded.get_feature_names_out()) == list(bow.get_feature_names_out())


def test_bag_of_words_with_vocabulary_object(tmp_path):
    vocab = Vocabulary.from_texts(TEXTS, min_freq=2)
    bow = BagOfWords(vocabulary=vocab, weighting="tfidf").fit(TEXTS)
    loaded = round_trip(bow, tmp_path)
    assert loaded.vocabulary == vocab
    assert (bow.transform(NEW_TEXTS) != loaded.transform(NEW_TEXTS)).nnz == 0


def test_callable_analyzer_is_refused_at_save(tmp_path):
    with pytest.raises(TypeError, match="analyzer"):
        rnnkit.save(BagOfWords(analyzer=str.split), tmp_path / "bow")
    assert not (tmp_path / "bow").exists()


def test_estimator_fresh_process_round_trip(tmp_path):
    estimator = models.BagOfWordsClassifier(epochs=2, hidden_sizes=(6,), early_stopping=False).fit(TEXTS, LABELS)
    rnnkit.save(estimator, tmp_path / "clf.rnnkit")
    expected = estimator.predict_proba(NEW_TEXTS)
    code = ("import numpy as np, rnnkit, sys; d = sys.argv[1]; m = rnnkit.load(d + '/clf.rnnkit'); "
            f"np.save(d + '/p.npy', m.predict_proba({NEW_TEXTS!r}))")
    status, output = run_python(["-c", code, str(tmp_path)])
    assert status == 0, output
    assert np.load(tmp_path / "p.npy").tobytes() == expected.tobytes()


def test_children_given_to_the_constructor_are_stored_once(tmp_path):
    stack = nn.Sequential(nn.Embedding(50, 40), nn.LSTM(40, 40))
    rnnkit.save(stack, tmp_path / "stack")
    with np.load(tmp_path / "stack", allow_pickle=False) as archive:
        stored = sum(archive[name].nbytes for name in archive.files if name != DOCUMENT_ENTRY)
    assert stored == sum(a.nbytes for a in stack.state_dict().values())


def test_module_without_constructor_record_is_refused(tmp_path):
    layer = nn.Linear(2, 3)
    del layer.__dict__["_constructor_call"]  # as a module unpickled from an older rnnkit
    with pytest.raises(TypeError, match="constructor call"):
        rnnkit.save(layer, tmp_path / "old")


def test_deeply_nested_document(saved):
    rewrite_document(saved, lambda d: d.update(extra="x"))  # a valid file, still loadable
    rnnkit.load(saved)
    with np.load(saved, allow_pickle=False) as archive:
        entries = {name: archive[name] for name in archive.files}
    entries[DOCUMENT_ENTRY] = np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8)
    write_npz(saved, entries)
    with pytest.raises(rnnkit.FormatError):
        rnnkit.load(saved)
