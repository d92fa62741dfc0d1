"""Topic classification on real text available offline: docstrings of the Python standard
library, labelled by the package they document.

Corpus: every function, class and method docstring (at least 8 words, deduplicated) of seven
stdlib packages - asyncio, email, xml, logging, importlib, multiprocessing and "web" (http +
urllib) - read with inspect from the running interpreter (so the exact counts depend on the
Python version; the numbers in docs/models.md are from CPython 3.11). Split: stratified 75/25
with numpy's default_rng(0), after sorting the documents by (label, qualified name).

Compares rnnkit's TextClassifier (LSTM) and BagOfWordsClassifier (tf-idf -> linear) with
scikit-learn's TfidfVectorizer + LogisticRegression on the same split.

    python examples/classify_topics.py [--epochs 20] [--threads 1]
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import time
import warnings

import numpy as np

import rnnkit
from rnnkit.models import BagOfWordsClassifier, TextClassifier

TOPICS = {"asyncio": ["asyncio"], "email": ["email"], "xml": ["xml"], "logging": ["logging"],
          "importlib": ["importlib"], "multiprocessing": ["multiprocessing"], "web": ["http", "urllib"]}


def _modules(package: str):
    pkg = importlib.import_module(package)
    mods = [pkg]
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), package + "."):
        if "test" in info.name or "__main__" in info.name:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mods.append(importlib.import_module(info.name))
        except Exception:  # optional platform modules (e.g. Windows-only) are skipped
            pass
    return mods


def load_corpus(min_words: int = 8):
    docs = {}
    for label, packages in TOPICS.items():
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
    items = sorted(((label, qual, doc) for doc, (label, qual) in docs.items()))
    return [d for _, _, d in items], np.array([lab for lab, _, _ in items])


def stratified_split(labels, test_fraction=0.25, seed=0):
    rng = np.random.default_rng(seed)
    train, test = [], []
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        rng.shuffle(idx)
        k = int(round(len(idx) * test_fraction))
        test.extend(idx[:k])
        train.extend(idx[k:])
    return np.sort(train), np.sort(test)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    rnnkit.set_num_threads(args.threads)
    texts, labels = load_corpus()
    tr, te = stratified_split(labels)
    Xtr, Xte = [texts[i] for i in tr], [texts[i] for i in te]
    ytr, yte = labels[tr], labels[te]
    print(f"corpus: {len(texts)} stdlib docstrings, {len(TOPICS)} topics "
          f"({', '.join(f'{t}={int((labels == t).sum())}' for t in TOPICS)}); train {len(tr)}, test {len(te)}")
    print(f"majority-class baseline: {np.mean(yte == max(set(ytr), key=list(ytr).count)):.3f}")
    results = {}
    for name, est in [
        ("rnnkit TextClassifier (LSTM, max pooling)",
         TextClassifier(cell="lstm", embedding_dim=64, hidden_size=64, pooling="max", dropout=0.3, max_len=120, min_freq=2,
                        epochs=args.epochs, batch_size=32, lr=3e-3, seed=0)),
        ("rnnkit BagOfWordsClassifier (tf-idf -> linear)",
         BagOfWordsClassifier(hidden_sizes=(), epochs=args.epochs, batch_size=32, lr=0.02, seed=0)),
    ]:
        t = time.perf_counter()
        est.fit(Xtr, ytr)
        results[name] = (est.score(Xte, yte), time.perf_counter() - t)
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        t = time.perf_counter()
        sk = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000)).fit(Xtr, ytr)
        results["scikit-learn TfidfVectorizer + LogisticRegression"] = (sk.score(Xte, yte), time.perf_counter() - t)
    except ImportError:
        print("(scikit-learn not installed: no TF-IDF + logistic regression baseline)")
    for name, (acc, secs) in results.items():
        print(f"{name:<52} test accuracy {acc:.3f}  ({secs:.1f} s)")


if __name__ == "__main__":
    main()
