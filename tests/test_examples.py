"""Every script in examples/ runs as the README shows it (python examples/NAME.py, with the
installed package or a developer build), here with a quick configuration; each must print its
result lines. A process per script, as a user runs them."""
import os

import pytest

from child_process import run_python

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")

QUICK = {
    "char_lm.py": (["--epochs", "1", "--max-chars", "4000", "--hidden", "16", "--quiet",
                    "--sample-chars", "20"], "sample after training"),
    "classify_topics.py": (["--epochs", "1"], "TextClassifier"),
    "distributed_lm.py": (["--epochs", "1", "--max-words", "3000", "--hidden", "16", "--quiet"],
                          "validation perplexity"),
    "dates_seq2seq.py": (["--train", "100", "--test", "20", "--epochs", "1", "--hidden", "16",
                          "--attention", "dot", "--beam", "2"], "exact"),
    "forecast.py": (["--epochs", "1"], "LSTM direct"),
    "gradient_flow.py": (["--steps", "12", "--train", "100", "--epochs", "1", "--hidden", "8",
                          "--batches", "3"], "gradient ratio"),
    "vec2seq.py": (["--epochs", "1"], "written exactly"),
}


# modules the examples (and bench/estimators.py) import, not scripts to run on their own
HELPERS = {"corpora.py"}


def test_every_example_is_listed():
    assert sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and f not in HELPERS) == sorted(QUICK)


@pytest.mark.parametrize("script", sorted(QUICK))
def test_example_runs(script):
    args, expected = QUICK[script]
    status, output = run_python([os.path.join(EXAMPLES, script), *args], timeout=600)
    assert status == 0, output
    assert expected in output, output


def test_before_after_bench_runs():
    """bench/before_after.py on one build against itself, quick: the table comes out."""
    import rnnkit

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(rnnkit.__file__)))
    script = os.path.join(os.path.dirname(EXAMPLES), "bench", "before_after.py")
    status, output = run_python([script, package_dir, package_dir, "--quick", "--repeats", "1"],
                                timeout=600)
    assert status == 0, output
    assert "| lstm | 5x2x8x8 | train |" in output, output
