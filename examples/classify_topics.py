"""Topic classification on real text available offline: docstrings of the Python standard
library, labelled by the package they document.

Corpus (examples/corpora.py): every function, class and method docstring (at least 8 words,
deduplicated) of seven stdlib packages - asyncio, email, xml, logging, importlib,
multiprocessing and "web" (http + urllib) - read with inspect from the running interpreter (so
the exact counts depend on the Python version). Split: stratified 75/25 with numpy's
default_rng(0), after sorting the documents by (label, qualified name).

Compares rnnkit's TextClassifier and BagOfWordsClassifier, both with their defaults (early
stopping on a validation split of the training part; --epochs caps the epochs), with
scikit-learn's TfidfVectorizer + LogisticRegression on the same split. bench/estimators.py
runs the same comparison on more corpora.

    python examples/classify_topics.py [--epochs 30] [--threads N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import rnnkit
from corpora import STDLIB_TOPICS, stdlib_docstrings, stratified_split
from rnnkit.models import BagOfWordsClassifier, TextClassifier


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=30, help="the most epochs (early stopping ends sooner)")
    ap.add_argument("--threads", type=int, default=None, help="rnnkit threads (default: rnnkit's)")
    args = ap.parse_args(argv)
    if args.threads:
        rnnkit.set_num_threads(args.threads)
    texts, labels = stdlib_docstrings()
    tr, te = stratified_split(labels)
    Xtr, Xte = [texts[i] for i in tr], [texts[i] for i in te]
    ytr, yte = labels[tr], labels[te]
    print(f"corpus: {len(texts)} stdlib docstrings, {len(STDLIB_TOPICS)} topics "
          f"({', '.join(f'{t}={int((labels == t).sum())}' for t in STDLIB_TOPICS)}); train {len(tr)}, test {len(te)}")
    print(f"majority-class baseline: {np.mean(yte == max(set(ytr), key=list(ytr).count)):.3f}")
    results = {}
    for name, est in [
        ("rnnkit TextClassifier (defaults)", TextClassifier(epochs=args.epochs)),
        ("rnnkit BagOfWordsClassifier (defaults)", BagOfWordsClassifier(epochs=args.epochs)),
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
