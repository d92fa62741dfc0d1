"""rnnkit.plot (matplotlib, the optional extra): every picture is written as a valid PNG file,
headless; path=None returns the Figure and writes nothing. Skipped without matplotlib, except
the test that the missing extra gives a clear ImportError."""
import builtins
import os
import struct

import numpy as np
import pytest

from rnnkit import nn
from rnnkit.train import History, Trainer

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_size=(200, 150)):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG and head[12:16] == b"IHDR", head
    width, height = struct.unpack(">II", head[16:24])
    assert width >= min_size[0] and height >= min_size[1]
    assert os.path.getsize(path) < 400_000


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib")


def test_history_plot_from_a_trainer(mpl, tmp_path):
    rng = np.random.default_rng(0)
    model = nn.Sequential(rnn=nn.GRU(3, 8, return_sequences=False, batch_first=True, seed=0),
                          fc=nn.Linear(8, 2, seed=1))
    X = rng.standard_normal((40, 5, 3)).astype(np.float32)
    y = rng.integers(0, 2, 40)
    history = Trainer(model, metrics=["accuracy"], quiet=True).fit((X, y), (X[:10], y[:10]), epochs=3,
                                                                      batch_size=8)
    path = tmp_path / "curves.png"
    fig = history.plot(path)
    assert_png(path)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "accuracy", "learning rate"]
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["training", "validation"]
    fig = history.plot(metrics=["accuracy"])
    assert [ax.get_title() for ax in fig.axes] == ["accuracy"]
    with pytest.raises(ValueError, match="no \\['perplexity'\\]"):
        history.plot(metrics="perplexity")


def test_plot_history_none_writes_nothing(mpl, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from rnnkit.plot import plot_history

    monkeypatch.chdir(tmp_path)
    h = History()
    for e, (loss, lr) in enumerate([(2.0, 1e-2), (1.0, 1e-3)], 1):
        h.append(e, {"loss": loss, "lr": lr})
    fig = plot_history(h)
    assert isinstance(fig, Figure) and os.listdir(tmp_path) == []
    assert fig.axes[-1].get_yscale() == "log"
    assert isinstance(plot_history([3.0, 2.0, 1.5]), Figure)  # a plain list of losses
    with pytest.raises(ValueError, match="empty"):
        plot_history(History())


def test_gradient_norms_picture(mpl, tmp_path):
    from rnnkit.diagnostics import gradient_norms, plot_gradient_norms

    x = np.random.default_rng(0).standard_normal((30, 4, 2)).astype(np.float32)
    norms = {"RNN": gradient_norms(nn.RNN(2, 8, seed=0), x),
             "LSTM": gradient_norms(nn.LSTM(2, 8, num_layers=2, seed=0), x)}
    path = tmp_path / "flow.png"
    fig = plot_gradient_norms(norms, path, title="flow")
    assert_png(path)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    assert [line.get_label() for line in ax.get_lines()] == ["RNN", "LSTM, layer 0", "LSTM, layer 1"]
    with pytest.raises(ValueError, match="num_layers, T"):
        plot_gradient_norms(np.zeros((2, 3, 4)))


def test_attention_picture(mpl, tmp_path):
    from rnnkit.models import Seq2Seq
    from rnnkit.plot import plot_attention

    rng = np.random.default_rng(0)
    model = Seq2Seq(12, 8, bos_id=1, eos_id=2, pad_id=0, embedding_dim=8, hidden_size=8,
                    attention="additive", seed=0)
    src = rng.integers(3, 12, (3, 6))
    sl = np.array([6, 4, 5])
    targets, w = model.attention_weights(src, src_lengths=sl, max_len=7)
    assert w.shape[:2] == (3, max(len(t) for t in targets)) and w.shape[2] == 6
    for b, t in enumerate(targets):
        np.testing.assert_allclose(w[b, :len(t)].sum(axis=1), 1.0, rtol=1e-5)
        assert np.all(w[b, :, sl[b]:] == 0) and np.all(w[b, len(t):] == 0)
    path = tmp_path / "attention.png"
    fig = plot_attention(w[1], [f"s{i}" for i in range(4)], [str(i) for i in targets[1]], path)
    assert_png(path, (150, 150))
    assert fig.axes[0].get_images()[0].get_array().shape == (len(targets[1]), 4)
    with pytest.raises(ValueError, match="one example"):
        plot_attention(w)


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    h = History()
    h.append(1, {"loss": 1.0})
    with pytest.raises(ImportError, match=r'pip install "matplotlib>=3.5"'):
        h.plot()


def test_demo_writes_training_curves(mpl, tmp_path, capsys, restore_isa_and_threads):
    from rnnkit.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    path = tmp_path / "demo.png"
    assert main(["demo", "--corpus", str(corpus), "--epochs", "2", "--quiet", "--hidden", "8",
                 "--seq-len", "16", "--sample-chars", "5", "--threads", "1", "--plot", str(path)]) == 0
    assert f"training curves written to {path}" in capsys.readouterr().out
    assert_png(path)


@pytest.mark.parametrize("script,args,expected", [
    ("gradient_flow.py", ["--steps", "12", "--train", "100", "--epochs", "1", "--hidden", "8",
                          "--batches", "3", "--plot"], "picture written to"),
    ("dates_seq2seq.py", ["--train", "100", "--test", "20", "--epochs", "1", "--hidden", "8",
                          "--attention", "dot", "--beam", "2", "--plot-attention"], "heat map written to"),
])
def test_example_pictures(mpl, tmp_path, script, args, expected):
    from child_process import run_python

    examples = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
    path = tmp_path / "picture.png"
    status, output = run_python([os.path.join(examples, script), *args, str(path)], timeout=300)
    assert status == 0, output
    assert expected in output, output
    assert_png(path)
