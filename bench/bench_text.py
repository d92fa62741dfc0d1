"""Text pipeline and embedding-gradient benchmarks; prints a markdown table of medians.

    python bench/bench_text.py [--repeats 7]

Corpus (offline, ships with CPython): the paragraphs of ``pydoc_data.topics`` plus the
paragraphs of the docstrings of ~110 standard-library modules and their classes and functions
(>= 10,000 documents). Each pair of contenders runs alternately, ``--repeats`` times, and the
table reports medians and the ratio (other / rnnkit: > 1 means rnnkit is faster).

"Equivalent analyzer": scikit-learn gets ``analyzer=rnnkit.text.Tokenizer(...)``, so both sides
produce identical tokens and identical matrices (checked); the comparison is then about
counting, vocabulary building and weighting. The "own tokenizer" row pits each library's
default tokenization against the other's (different tokens) for context.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import os
import platform
import statistics
import time

import numpy as np
import scipy.sparse as sp

from checkout import use_checkout  # noqa: E402

use_checkout()

from rnnkit import _core  # noqa: E402
from rnnkit.embedding import embedding_backward, embedding_forward  # noqa: E402
from rnnkit.text import BagOfWords, Tokenizer  # noqa: E402

MODULES = """abc argparse ast asyncio base64 bisect bz2 calendar cmath codecs collections
concurrent.futures configparser contextlib copy csv ctypes dataclasses datetime decimal difflib
dis email enum fileinput fnmatch fractions ftplib functools getopt gettext glob gzip hashlib
heapq hmac html http.client http.server imaplib importlib inspect io ipaddress itertools json
logging lzma mailbox mimetypes multiprocessing numbers operator optparse os pathlib pickle
pkgutil platform plistlib poplib pprint queue random re sched secrets selectors shelve shlex
shutil signal smtplib socket socketserver sqlite3 ssl statistics string struct subprocess
tarfile tempfile textwrap threading time timeit tkinter tokenize trace traceback turtle typing
unittest urllib.parse urllib.request uuid warnings weakref xml.dom.minidom
xml.etree.ElementTree xmlrpc.client zipfile zipimport zoneinfo""".split()


def paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p.strip()]


def corpus() -> list[str]:
    """Real English technical text available offline: CPython's help topics and docstrings."""
    from pydoc_data.topics import topics

    docs = [p for key in sorted(topics) for p in paragraphs(topics[key])]
    seen = set()
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # e.g. tkinter on a headless build
            continue
        pending = [module]
        while pending:
            owner = pending.pop()
            for _, obj in [("", owner)] + sorted(vars(owner).items()):
                if id(obj) in seen or not (callable(obj) or obj is module):
                    continue
                seen.add(id(obj))
                doc = getattr(obj, "__doc__", None)
                if isinstance(doc, str):
                    docs.extend(paragraphs(doc))
                if isinstance(obj, type) and obj is not owner and \
                        str(getattr(obj, "__module__", "")).startswith(name.split(".")[0]):
                    pending.append(obj)
    return docs


def race(contenders: dict, repeats: int) -> dict:
    """Runs the callables alternately; returns name -> (median seconds, last result)."""
    times = {name: [] for name in contenders}
    results = {}
    for _ in range(repeats):
        for name, fn in contenders.items():
            gc.collect()
            t0 = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(ts), results[name]) for name, ts in times.items()}


def same_matrix(X, Y, tol=0.0) -> bool:
    return X.shape == Y.shape and (abs(X - Y).max() <= tol if X.nnz or Y.nnz else True)


def bench_bow(docs, repeats, rows):
    try:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    except ImportError:
        rows.append(("bag of words", "scikit-learn not installed", "", "", ""))
        return
    cases = [
        ("counts, unigrams", {}, CountVectorizer, {}),
        ("counts, English stop words, (1, 2)-grams", {"stop_words": "english", "ngram_range": (1, 2)},
         CountVectorizer, {}),
        ("counts, min_df=2, max_df=0.5", {"min_df": 2, "max_df": 0.5}, CountVectorizer, {}),
        ("tf-idf (l2), unigrams", {"weighting": "tfidf"}, TfidfVectorizer, {}),
        ("tf-idf sublinear, stop words, (1, 2)-grams",
         {"weighting": "tfidf", "sublinear_tf": True, "stop_words": "english", "ngram_range": (1, 2)},
         TfidfVectorizer, {"sublinear_tf": True}),
    ]
    token_keys = ("stop_words", "ngram_range")
    for label, ours, Theirs, extra in cases:
        tok = Tokenizer(**{k: v for k, v in ours.items() if k in token_keys})
        shared = {k: v for k, v in ours.items() if k in ("min_df", "max_df")}
        res = race({"rnnkit": lambda: BagOfWords(**ours).fit_transform(docs),
                    "sklearn": lambda: Theirs(analyzer=tok, **shared, **extra).fit_transform(docs)}, repeats)
        (t_ours, X), (t_theirs, Y) = res["rnnkit"], res["sklearn"]
        assert same_matrix(X, Y, 1e-12), label
        rows.append((f"`BagOfWords.fit_transform` vs `{Theirs.__name__}` (same analyzer): {label}",
                     f"{len(docs)} docs -> {X.shape[1]} terms, nnz {X.nnz}", t_ours, t_theirs,
                     t_theirs / t_ours))
    res = race({"rnnkit": lambda: BagOfWords().fit_transform(docs),
                "sklearn": lambda: CountVectorizer().fit_transform(docs)}, repeats)
    (t_ours, X), (t_theirs, Y) = res["rnnkit"], res["sklearn"]
    rows.append(("`BagOfWords()` vs `CountVectorizer()`, each with its own default tokenizer",
                 f"{X.shape[1]} vs {Y.shape[1]} terms", t_ours, t_theirs, t_theirs / t_ours))


def scatter_add_at(ids, dout, V):
    dW = np.zeros((V, dout.shape[1]), dout.dtype)
    np.add.at(dW, ids, dout)
    return dW


def scatter_sorted(ids, dout, V):
    """Sort ids, sum runs with np.add.reduceat, write the sums once per distinct id."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    dW = np.zeros((V, dout.shape[1]), dout.dtype)
    dW[sorted_ids[starts]] = np.add.reduceat(dout[order], starts, axis=0)
    return dW


def scatter_sparse(ids, dout, V):
    """dW = S @ dout with S the (V, N) one-hot matrix, via scipy's C++ sparse product."""
    S = sp.csr_matrix((np.ones(len(ids), dout.dtype), (ids, np.arange(len(ids)))), shape=(V, len(ids)))
    return np.asarray(S @ dout)


def bench_embedding(repeats, rows):
    rng = np.random.default_rng(0)
    for V, D, T, B, dtype in [(100_000, 128, 64, 256, np.float32), (10_000, 64, 32, 128, np.float64),
                              (1_000_000, 64, 50, 128, np.float32)]:
        # Zipf-like ids, as in real text: a few ids very frequent, most rare.
        ids = np.minimum(rng.zipf(1.2, size=(T, B)) - 1, V - 1).astype(np.int64)
        W = rng.standard_normal((V, D)).astype(dtype)
        out, cache = embedding_forward(ids, W)
        dout = rng.standard_normal(out.shape).astype(dtype)
        flat, d2 = ids.reshape(-1), dout.reshape(-1, D)
        res = race({"rnnkit": lambda: embedding_backward(dout, cache),
                    "np.add.at": lambda: scatter_add_at(flat, d2, V),
                    "sort+reduceat": lambda: scatter_sorted(flat, d2, V),
                    "scipy one-hot @ dout": lambda: scatter_sparse(flat, d2, V)}, repeats)
        t_ours, ref = res["rnnkit"]
        size = f"V={V}, D={D}, ids ({T}, {B}), {np.dtype(dtype).name}"
        tol = 1e-3 if dtype == np.float32 else 1e-9
        for name in ("np.add.at", "sort+reduceat", "scipy one-hot @ dout"):
            t, other = res[name]
            assert np.allclose(ref, other, atol=tol), name
            rows.append((f"`embedding_backward` -> new dW vs {name}", size, t_ours, t, t / t_ours))
        # Accumulating into a kept gradient buffer: no (V, D) allocation, only the scatter.
        buf_ours, buf_at = np.zeros((V, D), dtype), np.zeros((V, D), dtype)
        res = race({"rnnkit": lambda: embedding_backward(dout, cache, out=buf_ours),
                    "np.add.at": lambda: np.add.at(buf_at, flat, d2)}, repeats)
        assert np.allclose(buf_ours, buf_at, atol=tol * repeats)
        rows.append(("`embedding_backward(..., out=dW)` (+= into a kept buffer) vs np.add.at(dW, ...)",
                     size, res["rnnkit"][0], res["np.add.at"][0], res["np.add.at"][0] / res["rnnkit"][0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-bow", action="store_true")
    parser.add_argument("--skip-embedding", action="store_true")
    args = parser.parse_args()
    import warnings

    with warnings.catch_warnings():  # reading __doc__ of deprecated aliases (typing.io) warns
        warnings.simplefilter("ignore", DeprecationWarning)
        docs = corpus()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, NumPy {np.__version__}, rnnkit ISA {_core.active_isa()}, "
          f"threads {_core.get_num_threads()}")
    try:
        import sklearn
        print(f"scikit-learn {sklearn.__version__}")
    except ImportError:
        pass
    print(f"corpus: {len(docs)} documents, {sum(map(len, docs))} characters; medians of {args.repeats} runs\n")
    rows = []
    if not args.skip_bow:
        bench_bow(docs, args.repeats, rows)
    if not args.skip_embedding:
        bench_embedding(args.repeats, rows)
    print("| benchmark | size | rnnkit (ms) | other (ms) | other / rnnkit |")
    print("|---|---|---:|---:|---:|")
    for name, size, a, b, ratio in rows:
        if a == "":
            print(f"| {name} | {size} | | | |")
        else:
            print(f"| {name} | {size} | {a * 1e3:.1f} | {b * 1e3:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
