"""Real text corpora available offline, for the topic-classification example and the estimator
benchmark (bench/estimators.py). Not an example to run by itself: a module both import.

Each loader returns ``(texts, labels)`` (a list of str and a numpy array of str) in a fixed order,
so a split made with ``stratified_split`` is the same on every run of the same machine; a corpus
that cannot be read here raises ``CorpusUnavailable`` saying why.

- ``stdlib_docstrings``: docstrings of seven CPython standard-library packages, labelled by package.
- ``scipy_docstrings``: docstrings of eight SciPy subpackages, labelled by subpackage.
- ``debian_descriptions``: the one-line descriptions of Debian packages, labelled by their
  ``Section`` field, from the package lists ``apt-get update`` fetches into /var/lib/apt/lists.
"""
from __future__ import annotations

import contextlib
import glob
import gzip
import importlib
import inspect
import io
import lzma
import os
import pkgutil
import subprocess
import warnings

import numpy as np

STDLIB_TOPICS = {"asyncio": ["asyncio"], "email": ["email"], "xml": ["xml"], "logging": ["logging"],
                 "importlib": ["importlib"], "multiprocessing": ["multiprocessing"], "web": ["http", "urllib"]}
SCIPY_TOPICS = {name: [f"scipy.{name}"] for name in
                ("stats", "signal", "optimize", "sparse", "linalg", "interpolate", "spatial", "special")}
APT_LISTS = "/var/lib/apt/lists"


class CorpusUnavailable(RuntimeError):
    """The corpus cannot be built on this machine (the message says why and what to do)."""


# ---------------------------------------------------------------------- docstrings
def _modules(package: str):
    pkg = importlib.import_module(package)
    mods = [pkg]
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), package + "."):
        if "test" in info.name or "__main__" in info.name:
            continue
        try:
            # some modules print or warn when imported: keep that out of the caller's output
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                mods.append(importlib.import_module(info.name))
        except Exception:  # optional platform modules (e.g. Windows-only) are skipped
            pass
    return mods


def docstring_corpus(topics: dict, min_words: int = 8):
    """Docstrings (at least ``min_words`` words, deduplicated: the first owner keeps a shared
    one) of every function, class and method defined in the packages of each topic; labels
    are the topic names. Sorted by (label, qualified name)."""
    docs = {}
    for label, packages in topics.items():
        for package in packages:
            for mod in _modules(package):
                for name, obj in sorted(vars(mod).items()):
                    if getattr(obj, "__module__", None) != mod.__name__:
                        continue
                    members = [(name, obj)]
                    if inspect.isclass(obj):
                        members += [(f"{name}.{k}", v) for k, v in sorted(vars(obj).items()) if inspect.isfunction(v)]
                    for qual, o in members:
                        doc = inspect.getdoc(o)
                        if doc and len(doc.split()) >= min_words and doc not in docs:
                            docs[doc] = (label, f"{mod.__name__}.{qual}")
    items = sorted((label, qual, doc) for doc, (label, qual) in docs.items())
    return [doc for _, _, doc in items], np.array([label for label, _, _ in items])


def stdlib_docstrings(min_words: int = 8):
    """CPython's own docstrings by package (the counts depend on the Python version)."""
    return docstring_corpus(STDLIB_TOPICS, min_words)


def scipy_docstrings(min_words: int = 8):
    """SciPy's docstrings by subpackage (its numpydoc docstrings are long: 'Parameters',
    'Examples' sections included, as a user would paste them)."""
    try:
        import scipy  # noqa: F401
    except ImportError as e:
        raise CorpusUnavailable("SciPy is not installed") from e
    return docstring_corpus(SCIPY_TOPICS, min_words)


# ---------------------------------------------------------------------- Debian package lists
def _read_package_list(path: str) -> str:
    if path.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    if path.endswith(".xz"):
        with lzma.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    if path.endswith((".lz4", ".zst", ".bz2")):
        # apt may keep its lists compressed with codecs Python lacks; its helper reads them all
        helper = "/usr/lib/apt/apt-helper"
        if not os.path.exists(helper):
            raise CorpusUnavailable(f"{path} is compressed and {helper} is missing to read it")
        return subprocess.run([helper, "cat-file", path], check=True, capture_output=True).stdout.decode(
            "utf-8", errors="replace")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _stanzas(text: str):
    for block in text.split("\n\n"):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def debian_descriptions(n_sections: int = 8, per_section: int = 384, lists_dir: str = APT_LISTS, seed: int = 0):
    """Descriptions of Debian packages labelled by ``Section`` (the component prefix, e.g.
    "contrib/", dropped): the ``n_sections`` largest sections, ``per_section`` packages drawn
    from each (``default_rng(seed)`` over the packages sorted by name), one document per
    distinct description. Run ``apt-get update`` (as root) first to fetch the lists."""
    paths = sorted(p for p in glob.glob(os.path.join(lists_dir, "*_Packages*")) if not p.endswith(".diff_Index"))
    if not paths:
        raise CorpusUnavailable(f"no Debian package lists in {lists_dir} (run `apt-get update` as root)")
    by_description = {}
    for path in paths:
        for fields in _stanzas(_read_package_list(path)):
            section, description = fields.get("Section"), fields.get("Description")
            if section and description:
                by_description.setdefault(description, (section.rsplit("/", 1)[-1], fields.get("Package", "")))
    counts = {}
    for section, _ in by_description.values():
        counts[section] = counts.get(section, 0) + 1
    sections = sorted(counts, key=lambda s: (-counts[s], s))[:n_sections]
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for section in sorted(sections):
        docs = sorted((package, description) for description, (sec, package) in by_description.items()
                      if sec == section)
        keep = np.sort(rng.permutation(len(docs))[:per_section])
        texts += [docs[i][1] for i in keep]
        labels += [section] * len(keep)
    return texts, np.array(labels)


CORPORA = {"stdlib-docstrings": stdlib_docstrings, "scipy-docstrings": scipy_docstrings,
           "debian-descriptions": debian_descriptions}


# ---------------------------------------------------------------------- split
def stratified_split(labels, test_fraction: float = 0.25, seed: int = 0):
    """Indices ``(train, test)``: ``test_fraction`` of each class (rounded) goes to test,
    drawn with ``default_rng(seed)``; both sorted."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_fraction))
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(train), np.sort(test)


if __name__ == "__main__":
    for name, load in CORPORA.items():
        try:
            texts, labels = load()
        except CorpusUnavailable as e:
            print(f"{name}: unavailable ({e})")
            continue
        sizes = ", ".join(f"{lab}={int((labels == lab).sum())}" for lab in np.unique(labels))
        words = np.median([len(t.split()) for t in texts])
        print(f"{name}: {len(texts)} documents, median {words:.0f} words; {sizes}")
