"""Held-out accuracy of the text estimators with their defaults on real corpora available
offline, against scikit-learn's TF-IDF + logistic regression (the target the defaults are
tuned to come near). Corpora and the 75/25 stratified split: examples/corpora.py.

    python bench/estimators.py                       # every corpus, a markdown table
    python bench/estimators.py --corpus debian-descriptions --set cell=lstm --set dropout=0.5

``--set NAME=VALUE`` (a Python literal) changes a TextClassifier parameter, for tuning; a
corpus that cannot be built here (no apt lists, no SciPy) is reported and skipped.
"""
from __future__ import annotations

import argparse
import ast
import datetime
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))

import rnnkit  # noqa: E402
from corpora import CORPORA, CorpusUnavailable, stratified_split  # noqa: E402
from rnnkit.models import BagOfWordsClassifier, TextClassifier  # noqa: E402


def _tfidf_logistic_regression():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=2000))


def _timed_score(estimator, train, test):
    start = time.perf_counter()
    estimator.fit(*train)
    return estimator.score(*test), time.perf_counter() - start


def _parse_settings(pairs):
    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set needs NAME=VALUE, got {pair!r}")
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[name] = value  # a bare word, e.g. cell=gru
    return settings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", action="append", choices=sorted(CORPORA),
                    help="corpus to run (repeatable; default: all)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a TextClassifier parameter other than its default (repeatable)")
    ap.add_argument("--only-text", action="store_true", help="run TextClassifier alone (tuning)")
    ap.add_argument("--split-seed", type=int, default=0,
                    help="seed of the train/test split (tune on another split than the one reported)")
    ap.add_argument("--threads", type=int, default=None, help="rnnkit threads (default: rnnkit's)")
    args = ap.parse_args(argv)
    if args.threads:
        rnnkit.set_num_threads(args.threads)
    settings = _parse_settings(args.set)
    label = "TextClassifier(" + ", ".join(f"{k}={v!r}" for k, v in settings.items()) + ")"

    print(f"# {datetime.date.today().isoformat()}, {platform.machine()} {platform.processor() or ''}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, rnnkit threads "
          f"{rnnkit.get_num_threads()}")
    print("| corpus | documents (train/test), classes | " + label +
          ("" if args.only_text else " | BagOfWordsClassifier() | TF-IDF + LogisticRegression |"))
    print("|---|---|---|" + ("" if args.only_text else "---|---|"))
    for name in args.corpus or list(CORPORA):
        try:
            texts, labels = CORPORA[name]()
        except CorpusUnavailable as e:
            print(f"| {name} | skipped: {e} |")
            continue
        train_idx, test_idx = stratified_split(labels, seed=args.split_seed)
        train = ([texts[i] for i in train_idx], labels[train_idx])
        test = ([texts[i] for i in test_idx], labels[test_idx])
        text_clf = TextClassifier(**settings)
        cells = [_timed_score(text_clf, train, test)]
        if not args.only_text:
            cells.append(_timed_score(BagOfWordsClassifier(), train, test))
            try:
                cells.append(_timed_score(_tfidf_logistic_regression(), train, test))
            except ImportError:
                cells.append(None)
        shown = [("n/a (no scikit-learn)" if c is None else f"{c[0]:.3f} ({c[1]:.0f} s)") for c in cells]
        epochs = f", {text_clf.n_iter_} epochs (best {text_clf.best_epoch_})"
        print(f"| {name} | {len(texts)} ({len(train_idx)}/{len(test_idx)}), {len(np.unique(labels))} | "
              + " | ".join(shown) + f" |{epochs if args.only_text else ''}", flush=True)


if __name__ == "__main__":
    main()
