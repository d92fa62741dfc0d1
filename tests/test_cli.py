"""The rnnkit command: info, check (kernels vs reference) and the language-model demo in a tiny
configuration (a few hundred characters, one short epoch) so it runs in about a second."""
from __future__ import annotations

import re

import pytest

from rnnkit.cli import main


def test_info(capsys):
    assert main(["info"]) == 0
    assert "ISA active" in capsys.readouterr().out


def test_check_compares_kernels_with_reference(capsys):
    pytest.importorskip("rnnkit.reference")
    assert main(["check", "--steps", "5", "--batch", "2", "--inputs", "3", "--hidden", "4", "--repeats", "1"]) == 0
    assert "faster" in capsys.readouterr().out


def test_demo_tiny_corpus_trains_and_samples(tmp_path, capsys, restore_isa_and_threads):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log.\n" * 40, encoding="utf-8")
    rc = main(["demo", "--corpus", str(corpus), "--cell", "gru", "--epochs", "3", "--quiet", "--hidden", "16",
               "--seq-len", "16", "--batch", "8", "--lr", "0.02", "--sample-chars", "20"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "sample before training" in out and "sample after training" in out
    m = re.search(r"validation perplexity: ([\d.]+) -> ([\d.]+) after 3 epochs.*unigram baseline ([\d.]+)", out)
    assert m, out
    before, after, unigram = map(float, m.groups())
    # a repeated sentence is easy: 3 epochs take the model far below the unigram baseline
    assert after < unigram < before


def test_demo_default_corpus_is_offline_text():
    from rnnkit.cli import _default_corpus

    text, name = _default_corpus()
    assert "pydoc" in name and len(text) > 300_000


def test_demo_rejects_too_short_corpus(tmp_path, capsys, restore_isa_and_threads):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc", encoding="utf-8")
    assert main(["demo", "--corpus", str(corpus), "--quiet"]) == 2
    assert "too short" in capsys.readouterr().err


def test_bench_quick_runs_and_writes_csv(tmp_path, capsys):
    pytest.importorskip("google_benchmark")
    from rnnkit.cli import main

    csv = tmp_path / "bench.csv"
    assert main(["bench", "--quick", "--suite", "recurrent", "--cells", "gru", "--modes", "inference",
                 "--impls", "rnnkit,numpy", "--shapes", "0", "--repetitions", "2", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert "| gru | 5x2x8x8 | inference |" in out
    rows = [line for line in csv.read_text().splitlines() if not line.startswith("#")]
    assert rows[0].startswith("suite,cell,shape,mode,impl,median_ms")
    assert {r.split(",")[4] for r in rows[1:]} == {"rnnkit", "numpy"}
    assert all(float(r.split(",")[5]) > 0 for r in rows[1:])
