"""Character-level language model on CPython's pydoc help topics (offline): validation
perplexity against the unigram baseline, and samples. Same setup as `rnnkit demo`, with more
training by default.

    python examples/char_lm.py [--epochs 4] [--cell lstm]
"""
from __future__ import annotations

import sys

from rnnkit.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--epochs" not in args:
        args = ["--epochs", "4"] + args
    sys.exit(main(["demo"] + args))
