"""The rnnkit command: info, check (kernels vs reference) and the language-model demo in a tiny
configuration (a few hundred characters, one short epoch) so it runs in about a second."""
from __future__ import annotations

import re

import pytest

from rnnkit.cli import main

from child_process import run_python


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


def test_bench_quick_runs_and_writes_csv(tmp_path, capfd):
    pytest.importorskip("google_benchmark")
    import csv as csv_module

    from rnnkit.cli import main

    csv, md = tmp_path / "bench.csv", tmp_path / "bench.md"
    assert main(["bench", "--quick", "--suite", "recurrent", "--cells", "gru", "--impls", "rnnkit,numpy",
                 "--shapes", "0", "--repetitions", "2", "--csv", str(csv), "--markdown", str(md)]) == 0
    out, err = capfd.readouterr()
    text = md.read_text()
    assert text in out
    assert "Run on" not in out + err  # google_benchmark's raw console report is kept aside
    # header: both GEMM peaks, the FMA peaks and how the floors were measured
    assert "- sgemm: " in text and "- dgemm: " in text and "- GEMM floors: " in text
    assert "- fma peak: float32 " in text
    # one recurrent table per dtype (both by default), each with the GEMM-floor and FMA-peak
    # columns, read by column name
    tables = {}
    for dtype in ("float32", "float64"):
        head = f"Recurrent layers, {dtype} (2 threads)"
        assert text.count(head) == 1
        block = text.split(head, 1)[1].split("\n\n")[1]
        names = [v.strip() for v in block.splitlines()[0].split("|")[1:-1]]
        assert names[-4:] == ["GEMM ms", "rnnkit GFLOP/s", "% of GEMM rate", "% of FMA peak"]
        tables[dtype] = [dict(zip(names, (v.strip() for v in line.split("|")[1:-1])))
                         for line in block.splitlines()[2:]]
    for rows in tables.values():
        assert [(r["cell"], r["T x B x I x H"], r["mode"]) for r in rows] == [
            ("gru", "5x2x8x8", "inference"), ("gru", "5x2x8x8", "train")]
        for r in rows:
            gemm_ms, pct = float(r["GEMM ms"]), float(r["% of GEMM rate"].rstrip("%"))
            assert gemm_ms > 0 and pct > 0 and float(r["rnnkit GFLOP/s"]) > 0
            assert r["% of FMA peak"].endswith("%") and "MISMATCH" not in r["% of FMA peak"]

    rows = list(csv_module.DictReader(line for line in csv.read_text().splitlines() if not line.startswith("#")))
    assert list(rows[0])[:6] == ["suite", "cell", "shape", "dtype", "mode", "impl"]
    assert {(r["dtype"], r["mode"], r["impl"]) for r in rows} == {
        (d, m, i) for d in ("float32", "float64") for m in ("inference", "train") for i in ("rnnkit", "numpy")}
    for r in rows:
        med, floor = float(r["median_ms"]), float(r["gemm_floor_ms"])
        assert med > 0 and floor > 0 and r["note"] == ""
        assert float(r["pct_of_gemm_rate"]) == pytest.approx(100 * floor / med, rel=1e-3)
        # the floor belongs to the (cell, shape, mode, dtype), not to the implementation
        same = {float(o["gemm_floor_ms"]) for o in rows if (o["dtype"], o["mode"]) == (r["dtype"], r["mode"])}
        assert same == {floor}


def test_bench_gemm_floor_does_exactly_the_cells_products():
    import numpy as np

    from rnnkit.bench import gemm_floor_fn
    from rnnkit.cells import CELLS

    class Recorder:  # numpy, with matmul recording its operand shapes
        def __getattr__(self, name):
            return getattr(np, name)

        def matmul(self, a, b, out):
            assert a.dtype == b.dtype == out.dtype == np.float64 and out.shape == (a.shape[0], b.shape[1])
            seen.append((a.shape, b.shape))
            return np.matmul(a, b, out=out)

    T, B, I, H = 3, 2, 5, 4
    for cell, G in ((c.name, c.num_gates) for c in CELLS):
        GH = G * H
        forward = [((T * B, I), (I, GH))] + [((B, H), (H, GH))] * T
        backward = [((B, GH), (GH, H))] * T + [((T * B, GH), (GH, I)), ((I, T * B), (T * B, GH)),
                                                ((H, T * B), (T * B, GH))]
        for mode, expected in (("inference", forward), ("train", forward + backward)):
            seen = []
            fn, flops = gemm_floor_fn(Recorder(), cell, (T, B, I, H), mode, "float64")
            fn()
            assert seen == expected
            assert flops == sum(2 * a[0] * a[1] * b[1] for a, b in expected)


def test_bench_e2e_quick_reports_tokens_per_second(tmp_path, capsys):
    pytest.importorskip("google_benchmark")
    from rnnkit.cli import main

    csv, md = tmp_path / "e2e.csv", tmp_path / "e2e.md"
    # A process of its own: google_benchmark keeps every benchmark registered in a process and
    # crashes when its main() runs a second time (the recurrent smoke test above ran it).
    status, output = run_python(["-m", "rnnkit.cli", "bench", "--quick", "--suite", "e2e", "--impls", "rnnkit",
                                 "--repetitions", "2", "--csv", str(csv), "--markdown", str(md)], timeout=300)
    assert status == 0, output
    text = md.read_text()
    rows = [[v.strip() for v in line.split("|")[1:-1]] for line in text.splitlines()
            if line.startswith("| lm ") or line.startswith("| classifier ")]
    assert [r[0] for r in rows] == ["lm", "classifier"]
    for r in rows:
        assert float(r[2].replace(",", "")) > 0 and r[3] == "-"  # no torch asked for
    with pytest.raises(SystemExit):  # whole epochs need their own process (torch's defaults)
        main(["bench", "--suite", "e2e,recurrent"])
    assert "runs alone" in capsys.readouterr().err


def test_bare_command_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rnnkit") and "demo" in out and "bench" in out


def test_bench_help_names_the_subcommand_and_writes_no_csv_by_default(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rnnkit bench") and "none written" in out
    from rnnkit.bench import parse_args

    assert parse_args(["--quick"]).csv is None  # rnnkit bench: no file unless --csv
    assert parse_args(["--quick"], csv_dir=str(tmp_path)).csv == str(tmp_path / "bench_rnn_quick.csv")


def test_fma_peak_probe_measures_every_isa():
    """The register-only FMA loop behind the bench's "% of FMA peak": a positive rate for every
    supported ISA and dtype, and the arguments checked."""
    import rnnkit
    from rnnkit import _core

    for isa in rnnkit.supported_isas():
        for dtype in ("float32", "float64"):
            assert _core.fma_peak_gflops(isa, dtype, 1) > 0
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64'"):
        _core.fma_peak_gflops("scalar", "float16")
    with pytest.raises(ValueError, match="runs must be >= 1"):
        _core.fma_peak_gflops("scalar", "float32", 0)


def test_bench_onnxruntime_contender(tmp_path, capfd):
    """ONNX Runtime times the same exported layer, inference and float32 only, and its outputs
    pass the bench's parity check against rnnkit."""
    pytest.importorskip("google_benchmark")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from rnnkit.cli import main

    md = tmp_path / "bench.md"
    assert main(["bench", "--quick", "--suite", "recurrent", "--cells", "lstm", "--impls",
                 "rnnkit,onnxruntime", "--shapes", "0", "--repetitions", "2",
                 "--markdown", str(md)]) == 0
    text = md.read_text()
    assert "MISMATCH" not in text

    def rows(dtype):
        block = text.split(f"Recurrent layers, {dtype} (2 threads)", 1)[1].split("\n\n")[1]
        names = [v.strip() for v in block.splitlines()[0].split("|")[1:-1]]
        return {line.split("|")[3].strip(): dict(zip(names, (v.strip() for v in line.split("|")[1:-1])))
                for line in block.splitlines()[2:]}

    float32 = rows("float32")
    assert float(float32["inference"]["onnxruntime ms"]) > 0
    assert float32["inference"]["onnxruntime/rnnkit"].endswith("x")
    assert float32["train"]["onnxruntime ms"] == "-"  # ONNX Runtime does not train
    # ONNX Runtime has no float64 kernels for the recurrent ops: no float64 values
    assert {r["onnxruntime ms"] for r in rows("float64").values()} == {"-"}
