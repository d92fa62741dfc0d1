"""``rnnkit.save(obj, path)`` / ``rnnkit.load(path)``: one file per object that never runs code
when read.

The file is a NumPy ``.npz`` (a zip of ``.npy`` arrays). The entry ``__rnnkit__.json`` is a
UTF-8 JSON document stored as a uint8 array; it names the format, its version, the rnnkit
version that wrote it and describes the object; every other entry is one array (weights,
buffers, fitted NumPy attributes) that the document refers to by name. Reading uses
``np.load(allow_pickle=False)`` and JSON only, and ``load`` constructs nothing but the classes
of a fixed table (``SAVEABLE_CLASSES``): a class name read from the file is looked up there,
never imported. Every way a file can be wrong raises ``FormatError``, before anything is
returned.

How each kind of object is described (see docs/persistence.md):

- an ``rnnkit.nn.Module``: the arguments of the constructor call that built it (recorded by
  ``Module``), its parameters and buffers, and its generators' states. Loading calls the
  constructor again with those arguments and then ``load_state_dict``.
- ``Vocabulary`` and ``Tokenizer``: their own JSON forms (``to_dict`` / ``get_options``).
- estimators and other scikit-learn style objects (``TextClassifier``, ``BagOfWordsClassifier``,
  ``BagOfWords``, ``Forecaster``, ``SeriesScaler``): their constructor parameters and their
  fitted attributes (names ending in ``_``), each encoded by these same rules; the training
  history (``history_``) is left out.
"""
from __future__ import annotations

import inspect
import io
import json
import os
import warnings
import zipfile

import numpy as np

__all__ = ["save", "load", "FormatError", "FORMAT_VERSION"]

FORMAT_NAME = "rnnkit"
FORMAT_VERSION = 1
DOCUMENT_ENTRY = "__rnnkit__"  # np.savez appends ".npy": the zip member is "__rnnkit__.npy"

# fitted attributes that are records of how training went, not of the fitted object
_TRAINING_RECORDS = ("history_",)
# the only bit generators a file may name (rng states are restored through these classes)
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class FormatError(ValueError):
    """``rnnkit.load`` could not read the file: it is truncated or corrupted, not an rnnkit
    file, of an unsupported format version, or describes something rnnkit does not construct
    (including pickled data, which is never unpickled). Nothing was loaded."""


def _saveable_classes() -> dict:
    """Registry name -> class: everything ``load`` may construct."""
    from . import nn
    from .models import (BagOfWordsClassifier, Forecaster, ForecastNet, LanguageModel, LuongAttention,
                         MLPClassifier, Seq2Seq, SequenceClassifier, SequenceTagger, SeriesScaler,
                         TextClassifier, VectorToSequence)
    from .text import BagOfWords, Tokenizer, Vocabulary

    classes = [nn.Linear, nn.Embedding, nn.Dropout, nn.LastStep, nn.MeanPool, nn.MaxPool, nn.RNN, nn.LSTM,
               nn.GRU, nn.Sequential, SequenceClassifier, LanguageModel, MLPClassifier, Seq2Seq,
               LuongAttention, SequenceTagger, VectorToSequence, ForecastNet, Forecaster, SeriesScaler,
               TextClassifier, BagOfWordsClassifier, BagOfWords, Vocabulary, Tokenizer]
    return {cls.__name__: cls for cls in classes}


def _kind(cls) -> str:
    """How objects of a registered class are written: "module", "vocabulary", "tokenizer" or
    "estimator" (constructor parameters + fitted attributes)."""
    from .nn import Module
    from .text import Tokenizer, Vocabulary

    if issubclass(cls, Module):
        return "module"
    if issubclass(cls, Vocabulary):
        return "vocabulary"
    if issubclass(cls, Tokenizer):
        return "tokenizer"
    return "estimator"


# ---------------------------------------------------------------------------------- writing
class _Writer:
    """Turns an object into a JSON-able description; arrays go to ``self.arrays`` and are
    referred to by entry name."""

    def __init__(self):
        self.arrays = {}
        self.registry = _saveable_classes()
        self.module_tree = set()  # ids of the modules inside the module being described

    def add_array(self, array) -> dict:
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError("arrays of Python objects cannot be saved (they would need pickle)")
        name = f"a{len(self.arrays)}"
        self.arrays[name] = array
        return {"__array__": name}

    def value(self, value, where: str):
        """The JSON form of a constructor argument or fitted attribute (tagged where JSON has
        no equivalent: tuples, dicts with any keys, sets, dtypes, arrays, objects)."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, float)):
            return value
        if isinstance(value, (np.bool_, np.integer, np.floating)):
            return value.item()
        if isinstance(value, np.ndarray):
            return self.add_array(value)
        if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
            return {"__dtype__": np.dtype(value).str}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"__tuple__": [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, (set, frozenset)):
            return {"__set__": [self.value(v, f"{where} item") for v in sorted(value, key=repr)]}
        if isinstance(value, dict):
            return {"__dict__": [[self.value(k, f"{where} key"), self.value(v, f"{where}[{k!r}]")]
                                 for k, v in value.items()]}
        if type(value).__name__ in self.registry and self.registry[type(value).__name__] is type(value):
            return {"__object__": self.record(value, where)}
        raise TypeError(f"rnnkit.save cannot write {where}: a {type(value).__module__}."
                        f"{type(value).__qualname__} is not one of the values it describes (numbers, "
                        f"strings, lists, tuples, dicts, arrays, dtypes and the rnnkit classes "
                        f"{sorted(self.registry)})")

    def record(self, obj, where: str) -> dict:
        cls = type(obj)
        if self.registry.get(cls.__name__) is not cls:
            raise TypeError(f"rnnkit.save cannot write {where}: {cls.__module__}.{cls.__qualname__} is "
                            f"not one of the classes rnnkit.load constructs: {sorted(self.registry)}")
        kind = _kind(cls)
        out = {"class": cls.__name__}
        if kind == "module":
            call = obj.__dict__.get("_constructor_call")
            if call is None:
                raise TypeError(f"rnnkit.save cannot write {where}: this {cls.__name__} has no record of "
                                f"the constructor call that built it (e.g. it was unpickled from an older "
                                f"rnnkit); build it again and load its state_dict() into it")
            # modules passed to the constructor that end up in this module's tree (Sequential's
            # children) are written as structure only: this module's state covers their arrays
            outer_tree = self.module_tree
            self.module_tree = {id(m) for _, m in obj.named_modules()} - {id(obj)}
            args, kwargs = call
            out["args"] = [self.value(a, f"{where} argument {i}") for i, a in enumerate(args)]
            out["kwargs"] = {k: self.value(v, f"{where} argument {k}") for k, v in kwargs.items()}
            self.module_tree = outer_tree
            if id(obj) not in outer_tree:
                out["state"] = {k: self.add_array(v) for k, v in obj.state_dict().items()}
                out["rng"] = self.value(obj.rng_state(), f"{where} generator states")
        elif kind == "vocabulary":
            out["vocabulary"] = obj.to_dict()
        elif kind == "tokenizer":
            out["options"] = self.value(obj.get_options(), f"{where} options")
        else:
            params = {name: getattr(obj, name) for name in inspect.signature(cls).parameters}
            out["params"] = {k: self.value(v, f"{where} parameter {k}") for k, v in params.items()}
            fitted = {k: v for k, v in vars(obj).items()
                      if k.endswith("_") and not k.startswith("_") and k not in _TRAINING_RECORDS}
            out["fitted"] = {k: self.value(v, f"{where} attribute {k}") for k, v in fitted.items()}
        return out


def _file_bytes(body: dict, writer: _Writer) -> bytes:
    """The whole file in memory: the document (the format header and ``body``, whose arrays
    ``writer`` holds) and those arrays, as ``.npz`` bytes. Also used for training checkpoints
    (``rnnkit.train.checkpoint``), whose body is a ``"checkpoint"`` value instead of an object."""
    from . import __version__

    document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "rnnkit_version": __version__, **body}
    text = json.dumps(document, ensure_ascii=False, allow_nan=True)
    entries = {DOCUMENT_ENTRY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
    entries.update(writer.arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    return buffer.getvalue()


def save(obj, path) -> None:
    """Writes ``obj`` (an rnnkit layer, model, estimator, ``Vocabulary``, ``BagOfWords`` ...) to
    ``path`` (written as given: no extension is added). TypeError, before anything is written,
    for an object (or a part of one) that is not an rnnkit class ``load`` can construct."""
    writer = _Writer()
    # built in memory first, so that a failure leaves no partial file at path
    data = _file_bytes({"object": writer.record(obj, type(obj).__name__)}, writer)
    with open(os.fspath(path), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------- reading
def _check_generator_states(rng) -> None:
    """FormatError unless ``rng`` is a ``Module.rng_state()`` snapshot naming known bit
    generators: Module.set_rng_state builds np.random.<name>(), so only those names may reach
    it. Also checked by the Trainer before it restores a checkpoint's model generators."""
    if not isinstance(rng, dict) or not all(
            isinstance(s, dict) and s.get("bit_generator") in _BIT_GENERATORS for s in rng.values()):
        raise FormatError(f"the generator states must name one of {_BIT_GENERATORS}")


# rnnkit writes its arrays uncompressed (np.savez), so a member's declared size is its stored
# size; a file declaring far more than it holds is a zip bomb, refused before anything is read.
_MAX_EXPANSION = 64


def _check_declared_sizes(path: str) -> None:
    with zipfile.ZipFile(path) as archive:
        declared = sum(info.file_size for info in archive.infolist())
    limit = _MAX_EXPANSION * os.path.getsize(path) + (1 << 20)
    if declared > limit:
        raise FormatError(f"{path!r} declares {declared} bytes of arrays in a file of "
                          f"{os.path.getsize(path)} bytes (more than {_MAX_EXPANSION}x: rnnkit files "
                          f"store their arrays uncompressed); refused before reading it")


def _read_entries(path) -> dict:
    """Every array of the file, read and CRC-checked now (np.load reads zip members lazily)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if not zipfile.is_zipfile(path):
        raise FormatError(f"{path!r} is not an rnnkit file: it is not a zip (.npz) archive; it may be "
                          f"truncated, or written by something else (e.g. pickle or np.save)")
    try:
        _check_declared_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FormatError:
        raise
    except Exception as exc:  # BadZipFile (CRC), ValueError (pickled object arrays), EOFError...
        raise FormatError(f"{path!r} could not be read as an rnnkit file: {type(exc).__name__}: {exc}") from None


def _read_document(path, entries) -> dict:
    raw = entries.get(DOCUMENT_ENTRY)
    if raw is None:
        raise FormatError(f"{os.fspath(path)!r} is an .npz archive but not an rnnkit file (no "
                          f"{DOCUMENT_ENTRY!r} entry)")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise FormatError(f"{os.fspath(path)!r}: the {DOCUMENT_ENTRY!r} entry is not UTF-8 bytes")
    try:
        document = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise FormatError(f"{os.fspath(path)!r}: the rnnkit document is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise FormatError(f"{os.fspath(path)!r} is not an rnnkit file")
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise FormatError(f"{os.fspath(path)!r} has rnnkit file format version {version!r} (written by "
                          f"rnnkit {document.get('rnnkit_version')!r}); this rnnkit reads version "
                          f"{FORMAT_VERSION} only")
    return document


class _Reader:
    def __init__(self, entries):
        self.entries = entries
        self.registry = _saveable_classes()

    def array(self, reference) -> np.ndarray:
        name = reference.get("__array__")
        if name == DOCUMENT_ENTRY or name not in self.entries:
            raise FormatError(f"the document refers to an array {name!r} that the file does not hold")
        return self.entries[name]

    def decode(self, encoded):
        """``value`` for a reader outside ``load`` (checkpoints): whatever in the document makes
        decoding fail (an unhashable set item or dict key, a dtype NumPy does not know, nesting
        deeper than Python's recursion limit) is a FormatError."""
        try:
            return self.value(encoded)
        except FormatError:
            raise
        except (TypeError, ValueError, RecursionError) as exc:
            raise FormatError(f"the rnnkit document holds a value that cannot be decoded: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None

    def value(self, encoded):
        if encoded is None or isinstance(encoded, (bool, int, float, str)):
            return encoded
        if isinstance(encoded, list):
            return [self.value(v) for v in encoded]
        if not isinstance(encoded, dict) or len(encoded) != 1:
            raise FormatError(f"unexpected value in the rnnkit document: {encoded!r:.80}")
        (tag, content), = encoded.items()
        if tag == "__array__":
            return self.array(encoded)
        if tag == "__dtype__":
            dtype = np.dtype(str(content))
            if dtype.hasobject:
                raise FormatError("the document names an object dtype")
            return dtype
        if tag == "__tuple__":
            return tuple(self.value(v) for v in self._list(content, tag))
        if tag == "__set__":
            return {self.value(v) for v in self._list(content, tag)}
        if tag == "__dict__":
            pairs = self._list(content, tag)
            if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise FormatError("a dict in the rnnkit document is not a list of [key, value] pairs")
            return {self.value(k): self.value(v) for k, v in pairs}
        if tag == "__object__":
            return self.construct(content)
        raise FormatError(f"unknown tag {tag!r} in the rnnkit document")

    @staticmethod
    def _list(content, tag):
        if not isinstance(content, list):
            raise FormatError(f"{tag} in the rnnkit document must hold a list")
        return content

    def construct(self, record):
        if not isinstance(record, dict) or not isinstance(record.get("class"), str):
            raise FormatError("an object record of the rnnkit document has no class name")
        name = record["class"]
        cls = self.registry.get(name)
        if cls is None:
            raise FormatError(f"the file asks for class {name!r}, which rnnkit.load does not construct "
                              f"(it constructs {sorted(self.registry)})")
        kind = _kind(cls)
        if kind == "module":
            return self._module(cls, record)
        if kind == "vocabulary":
            return cls.from_dict(record.get("vocabulary"))
        if kind == "tokenizer":
            options = self.value(record.get("options"))
            if not isinstance(options, dict):
                raise FormatError(f"the {name} record holds no options")
            return cls(**options)
        return self._estimator(cls, record)

    def _module(self, cls, record):
        args = self.value(record.get("args"))
        kwargs = self.value({"__dict__": [[k, v] for k, v in self._dict(record, "kwargs").items()]})
        if not isinstance(args, list):
            raise FormatError(f"the {cls.__name__} record has no argument list")
        with warnings.catch_warnings():
            # a deprecated spelling (e.g. RNN's mode=) warned when the object was first built
            warnings.simplefilter("ignore", FutureWarning)
            module = cls(*args, **kwargs)
        if "state" not in record and "rng" not in record:
            return module  # a part of the enclosing module, whose state covers it
        state = {k: self.array(v) if isinstance(v, dict) else None
                 for k, v in self._dict(record, "state").items()}
        module.load_state_dict(state)
        rng = self.value(record.get("rng"))
        _check_generator_states(rng)
        module.set_rng_state(rng)
        return module

    def _estimator(self, cls, record):
        params = self.value({"__dict__": [[k, v] for k, v in self._dict(record, "params").items()]})
        fitted = self.value({"__dict__": [[k, v] for k, v in self._dict(record, "fitted").items()]})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            obj = cls(**params)
        for name, value in fitted.items():
            if not (isinstance(name, str) and name.endswith("_") and name.isidentifier()
                    and not name.startswith("_")):
                raise FormatError(f"{name!r} is not a fitted attribute name")
            setattr(obj, name, value)
        return obj

    @staticmethod
    def _dict(record, key) -> dict:
        value = record.get(key)
        if not isinstance(value, dict):
            raise FormatError(f"the {record.get('class')} record has no {key!r} mapping")
        return value


def _read_file(path):
    """(document, reader) of a file: its format header checked, its arrays read; FormatError
    for anything that is not an rnnkit file. Shared with ``rnnkit.train.checkpoint``."""
    entries = _read_entries(path)
    return _read_document(path, entries), _Reader(entries)


def load(path):
    """Reads an object written by ``rnnkit.save``. FormatError (a ValueError) when the file is
    truncated, corrupted, not an rnnkit file, of another format version, or describes an object
    rnnkit does not construct or cannot rebuild; FileNotFoundError when there is no file."""
    document, reader = _read_file(path)
    if not isinstance(document.get("object"), dict):
        raise FormatError(f"{os.fspath(path)!r}: the rnnkit document describes no object" +
                          (" (it is a training checkpoint: Trainer.fit(resume=True) reads it)"
                           if "checkpoint" in document else ""))
    try:
        return reader.construct(document["object"])
    except FormatError as exc:
        raise FormatError(f"{os.fspath(path)!r}: {exc}") from None
    except Exception as exc:  # the file's configuration or arrays were rejected while rebuilding
        raise FormatError(f"{os.fspath(path)!r}: the saved object could not be rebuilt: "
                          f"{type(exc).__name__}: {exc}") from exc
