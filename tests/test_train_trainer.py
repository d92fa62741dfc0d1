"""rnnkit.train Trainer: learning, reproducibility, exact resume, atomic checkpoints, NaN
handling, bucketing, early stopping, evaluate/predict and bad input. Small nn models so the
whole file runs in a few seconds."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from rnnkit import nn
from rnnkit.train import (CrossEntropy, EarlyStopping, NonFiniteLossError, Regularizer, StepLR, Trainer,
                          fit, load_checkpoint, predict, save_checkpoint)
from rnnkit.train import checkpoint as checkpoint_mod
from rnnkit.train import data as data_mod

V, C = 20, 3


def make_data(n=120, T=12, seed=0):
    """Class c sequences mostly use tokens 2+5c..6+5c, plus noise tokens 17..19; padded with 0."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    lengths = rng.integers(1, T + 1, n)
    X = np.zeros((n, T), np.int64)
    for i in range(n):
        own = rng.integers(2 + 5 * y[i], 7 + 5 * y[i], lengths[i])
        noise = rng.integers(17, 20, lengths[i])
        X[i, :lengths[i]] = np.where(rng.random(lengths[i]) < 0.7, own, noise)
    return X, y, lengths


class PoolClassifier(nn.Module):
    """embedding -> dropout -> mean over valid steps -> linear: a tiny Module-contract model."""

    def __init__(self, seed=0, p=0.2):
        super().__init__(seed)
        self.embed = nn.Embedding(V, 8, padding_idx=0, seed=seed)
        self.drop = nn.Dropout(p, seed=seed + 1)
        self.pool = nn.MeanPool(batch_first=True)
        self.fc = nn.Linear(8, C, seed=seed + 2)

    def forward(self, x, *, lengths=None, training=False):
        h = self.drop.forward(self.embed.forward(x), training=training)
        return self.fc.forward(self.pool.forward(h, lengths=lengths))

    def backward(self, grad):
        self.embed.backward(self.drop.backward(self.pool.backward(self.fc.backward(grad))))


def make_model(seed=0, p=0.2):
    return PoolClassifier(seed, p)


def params_equal(a, b):
    pa, pb = a.parameters(), b.parameters()
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_fit_learns_and_reports_history():
    X, y, L = make_data()
    Xv, yv, Lv = make_data(60, seed=1)
    model = make_model()
    h = fit(model, (X, y, L), (Xv, yv, Lv), epochs=15, batch_size=16, lr=0.05, metrics=["accuracy"],
            quiet=True)
    assert h.epochs == list(range(1, 16))
    assert set(h.keys()) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert h["loss"][-1] < h["loss"][0] * 0.5
    assert h["val_accuracy"][-1] >= 0.9  # separable by token identity: a working loop gets ~1.0
    ev = h.trainer.evaluate((Xv, yv, Lv))
    assert ev["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-6)
    probs = h.trainer.predict(Xv, Lv)
    assert probs.shape == (60, C)
    assert (probs.argmax(1) == yv).mean() == pytest.approx(ev["accuracy"])


def test_same_seed_same_numbers_and_different_seed_differs():
    X, y, L = make_data()
    runs = []
    for seed in (0, 0, 1):
        m = make_model()
        h = fit(m, (X, y, L), epochs=2, batch_size=16, seed=seed, quiet=True)
        runs.append((m, h["loss"]))
    assert params_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert not params_equal(runs[0][0], runs[2][0])


class _Interrupt(Exception):
    pass


def interrupting_loss(after_calls):
    """Cross-entropy that raises after ``after_calls`` calls (a simulated crash / Ctrl-C)."""
    ce, calls = CrossEntropy(), [0]

    def loss(out, y, mask):
        calls[0] += 1
        if calls[0] > after_calls:
            raise _Interrupt
        return ce(out, y, mask)
    return loss


def test_resume_is_bit_identical_to_uninterrupted(tmp_path):
    X, y, L = make_data()
    Xv, yv, Lv = make_data(30, seed=1)
    kw = dict(epochs=3, batch_size=16, lr=0.03, quiet=True, metrics=["accuracy"], seed=7,
              optimizer="adamw", schedule=StepLR(1, 0.5), regularizer=Regularizer(input_l2=1e-4),
              clip_norm=1.0, checkpoint_every=3)
    ref = make_model()
    h_ref = fit(ref, (X, y, L), (Xv, yv, Lv), checkpoint=tmp_path / "ref.ckpt", **kw)
    # 8 batches per epoch, a checkpoint every 3 batches: the crash at the 14th loss call (epoch 2,
    # batch 6) leaves the checkpoint written after epoch 2's 3rd batch
    path = tmp_path / "run.ckpt"
    crashed = make_model()
    with pytest.raises(_Interrupt):
        fit(crashed, (X, y, L), (Xv, yv, Lv), checkpoint=path, loss=interrupting_loss(13),
            **dict(kw, schedule=StepLR(1, 0.5)))
    state = load_checkpoint(path)
    assert (state["epoch"], state["batch"]) == (1, 3)  # mid-epoch checkpoint, epoch index 1
    fresh = make_model(seed=99)  # different init: everything must come from the checkpoint
    h = fit(fresh, (X, y, L), (Xv, yv, Lv), checkpoint=path, resume=True, **dict(kw, schedule=StepLR(1, 0.5)))
    assert params_equal(fresh, ref)
    assert h.history == h_ref.history
    # the dropout generator continued exactly (the heads' generators are unseeded and unused)
    assert fresh.rng_state()["drop"] == ref.rng_state()["drop"]



def test_resume_with_plateau_schedule_and_early_stopping_state_is_bit_identical(tmp_path):
    """The states the JSON document must carry beyond the test above: ReduceLROnPlateau's best
    and counters, early stopping's best value and best weights, SGD momentum buffers."""
    from rnnkit.train import ReduceLROnPlateau

    X, y, L = make_data()
    Xv, yv, Lv = make_data(30, seed=1)
    kw = dict(epochs=3, batch_size=16, lr=0.03, quiet=True, seed=3, optimizer="sgd",
              optimizer_options={"momentum": 0.9}, checkpoint_every=3)
    fresh_callbacks = lambda: dict(schedule=ReduceLROnPlateau(patience=0, factor=0.5),  # noqa: E731
                                   early_stopping=EarlyStopping(patience=5, restore_best=True))
    ref = make_model()
    h_ref = fit(ref, (X, y, L), (Xv, yv, Lv), checkpoint=tmp_path / "ref.ckpt", **kw, **fresh_callbacks())
    path = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupt):
        fit(make_model(), (X, y, L), (Xv, yv, Lv), checkpoint=path, loss=interrupting_loss(13), **kw,
            **fresh_callbacks())
    assert load_checkpoint(path)["early_stopping"]["best_state"] is not None
    fresh = make_model(seed=99)
    h = fit(fresh, (X, y, L), (Xv, yv, Lv), checkpoint=path, resume=True, **kw, **fresh_callbacks())
    assert params_equal(fresh, ref)
    assert h.history == h_ref.history

@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the inf weights below overflow on purpose
def test_nan_loss_stops_with_epoch_and_batch_and_keeps_last_checkpoint(tmp_path):
    X, y, L = make_data()
    ce, calls = CrossEntropy(), [0]

    def loss(out, yb, mask):  # NaN at the 3rd batch of epoch 2 (8 batches per epoch)
        calls[0] += 1
        value, grad, count = ce(out, yb, mask)
        return (float("nan") if calls[0] == 11 else value), grad, count

    path = tmp_path / "m.ckpt"
    model = make_model()
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 3 of 8.*after epoch 1\)"):
        fit(model, (X, y, L), epochs=3, batch_size=16, loss=loss, checkpoint=path, quiet=True)
    state = load_checkpoint(path)
    assert (state["epoch"], state["batch"]) == (1, 0)
    assert all(np.all(np.isfinite(v)) for v in model.parameters().values())
    # an exploding model (inf inputs through the weights) is caught the same way
    bad = make_model()
    bad.parameters()["embed.W"][5] = np.inf
    with pytest.raises(NonFiniteLossError, match="epoch 1, batch"):
        fit(bad, (X, y, L), epochs=1, batch_size=16, quiet=True)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.ckpt"
    save_checkpoint(path, {"format": "rnnkit.train.checkpoint", "v": 1})
    good = path.read_bytes()

    def broken_fsync(fd):  # the bytes are written, flushing them to disk fails
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_mod.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": "rnnkit.train.checkpoint", "v": 2})
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["c.ckpt"]  # the temporary file was removed
    monkeypatch.undo()
    assert load_checkpoint(path)["v"] == 1
    (tmp_path / "junk").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ValueError, match="not an rnnkit training checkpoint"):
        load_checkpoint(tmp_path / "junk")


def test_stale_temp_files_are_removed_after_a_successful_write(tmp_path):
    """A writer killed between mkstemp and os.replace leaves c.ckpt.<8 chars>.tmp behind; the
    next successful write of c.ckpt removes it, and nothing that is not its own."""
    path = tmp_path / "c.ckpt"
    stale = [tmp_path / "c.ckpt.k1ll3d_x.tmp", tmp_path / "c.ckpt.abcdefgh.tmp"]
    others = [tmp_path / n for n in ("c.ckpt.b.abcdefgh.tmp",  # checkpoint "c.ckpt.b"'s temp file
                                     "d.ckpt.abcdefgh.tmp", "c.ckpt.notes.tmp", "c.ckpt.ABCDEFGH.tmp",
                                     "xc.ckpt.abcdefgh.tmp", "c.ckpt.abcdefgh.tmp.bak")]
    for f in stale + others:
        f.write_bytes(b"\x80\x05partial")

    def broken_fsync(fd):
        raise OSError("disk full")

    with pytest.MonkeyPatch.context() as mp:  # a failed write removes nothing else
        mp.setattr(checkpoint_mod.os, "fsync", broken_fsync)
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(path, {"format": "rnnkit.train.checkpoint", "v": 0})
    assert all(f.exists() for f in stale + others)
    save_checkpoint(path, {"format": "rnnkit.train.checkpoint", "v": 1})
    assert load_checkpoint(path)["v"] == 1
    assert sorted(os.listdir(tmp_path)) == sorted(["c.ckpt"] + [f.name for f in others])


def test_unwritable_checkpoint_is_reported_before_training(tmp_path):
    """Tests run as root, where a chmod'ed directory stays writable: the path goes under a
    regular file instead, which no user can write below."""
    X, y, L = make_data(40)
    (tmp_path / "file").write_bytes(b"")
    calls = []

    def counting_loss(out, y, mask=None):
        calls.append(1)
        return CrossEntropy()(out, y, mask)

    for path, err in ((tmp_path / "file" / "m.ckpt", FileExistsError),
                      (tmp_path / "file" / "sub" / "m.ckpt", NotADirectoryError),
                      (tmp_path, IsADirectoryError)):
        with pytest.raises(err, match=r"checkpoint='.*' cannot be written") as e:
            fit(make_model(), (X, y, L), loss=counting_loss, checkpoint=path, quiet=True)
        assert repr(str(path)) in str(e.value)
    assert not calls  # no batch ran
    assert sorted(os.listdir(tmp_path)) == ["file"]  # the probe leaves nothing behind
    fit(make_model(), (X, y, L), checkpoint=tmp_path / "new" / "m.ckpt", quiet=True)
    assert os.listdir(tmp_path / "new") == ["m.ckpt"]


def test_bucketing_limits_padding_and_covers_every_sample():
    lengths = np.random.default_rng(0).integers(1, 100, 1000)
    rng = np.random.default_rng(0)
    plan = data_mod.plan_batches(1000, 20, lengths, shuffle=True, bucket=True, pool=10, rng=rng)
    assert np.array_equal(np.sort(np.concatenate(plan)), np.arange(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in plan])
    plain = data_mod.plan_batches(1000, 20, lengths, shuffle=True, bucket=False, pool=10, rng=rng)
    spread_plain = np.mean([lengths[b].max() - lengths[b].min() for b in plain])
    assert spread < spread_plain / 5


@pytest.mark.parametrize("patience, epochs, stops", [
    (2, 10, True),   # stops early after epoch 3
    (5, 3, False),   # the epochs run out after the best one: restored all the same
])
def test_early_stopping_restores_best_weights(patience, epochs, stops):
    X, y, L = make_data()
    Xv, yv, Lv = make_data(30, seed=1)
    one = make_model()
    fit(one, (X, y, L), epochs=1, batch_size=16, quiet=True)
    model = make_model()
    # min_delta so large nothing counts as an improvement after epoch 1
    es = EarlyStopping(patience=patience, min_delta=1e9)
    h = fit(model, (X, y, L), (Xv, yv, Lv), epochs=epochs, batch_size=16, early_stopping=es, quiet=True)
    assert h.epochs == [1, 2, 3] and h.stopped_early == stops and es.best_epoch == 1
    assert params_equal(model, one)
    if not stops:
        kept_last = make_model()
        es = EarlyStopping(patience=5, min_delta=1e9, restore_best=False)
        fit(kept_last, (X, y, L), (Xv, yv, Lv), epochs=3, batch_size=16, early_stopping=es, quiet=True)
        assert not params_equal(kept_last, one)


def test_resuming_a_run_that_stopped_early_gives_the_best_weights_again(tmp_path):
    X, y, L = make_data()
    Xv, yv, Lv = make_data(30, seed=1)
    path = tmp_path / "es.ckpt"
    options = dict(epochs=10, batch_size=16, quiet=True, checkpoint=path)
    stopped = make_model()
    fit(stopped, (X, y, L), (Xv, yv, Lv), early_stopping=EarlyStopping(patience=2, min_delta=1e9), **options)
    resumed = make_model(seed=99)
    h = fit(resumed, (X, y, L), (Xv, yv, Lv), early_stopping=EarlyStopping(patience=2, min_delta=1e9),
            resume=True, **options)
    assert h.stopped_early and h.epochs == [1, 2, 3]
    assert params_equal(resumed, stopped)


def test_sequence_targets_are_cut_and_masked():
    """Per-step targets (N, T): the loss only sees steps t < lengths, so labels at padded steps
    may be anything (even out of range)."""
    X, y, L = make_data(60)
    Y = np.where(np.arange(12)[None] < L[:, None], X % C, 999)
    model = nn.Sequential(embed=nn.Embedding(V, 8, seed=0), fc=nn.Linear(8, C, batch_first=True, seed=1))
    h = fit(model, (X, Y, L), epochs=5, batch_size=8, lr=0.05, metrics=["accuracy", "perplexity"], quiet=True)
    assert h["accuracy"][-1] > 0.9
    assert h["perplexity"][-1] == pytest.approx(np.exp(h["loss"][-1]))
    out = predict(model, X, L, batch_size=7)
    assert out.shape == (60, 12, C)
    assert not out[np.arange(12)[None] >= L[:, None]].any()  # padded steps stay zero


def test_bad_input_is_reported_before_training():
    X, y, L = make_data(40)
    model = make_model()
    with pytest.raises(ValueError, match="X has 40 samples but y has 39"):
        fit(model, (X, y[:-1], L), quiet=True)
    with pytest.raises(ValueError, match="lengths has 39"):
        fit(model, (X, y, L[:-1]), quiet=True)
    with pytest.raises(ValueError, match=r"lengths\[3\] = 13 is outside \[0, 12\]"):
        fit(model, (X, y, np.where(np.arange(40) == 3, 13, L)), quiet=True)
    bad = y.copy()
    bad[5] = 7
    with pytest.raises(IndexError, match=r"train: y\[5\] = 7 is out of range for the model's 3 classes"):
        fit(model, (X, bad, L), quiet=True)
    with pytest.raises(ValueError, match="batch_size"):
        fit(model, (X, y, L), batch_size=0, quiet=True)
    with pytest.raises(ValueError, match="empty"):
        fit(model, (X[:0], y[:0]), quiet=True)
    with pytest.raises(TypeError, match="Module contract"):
        Trainer(object())
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        fit(model, (X, y, L), resume=True, quiet=True)


def test_progress_bar_shows_loss(capsys):
    X, y, L = make_data(40)
    fit(make_model(), (X, y, L), epochs=1, batch_size=8, metrics=["accuracy"])
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "accuracy=" in err
    fit(make_model(), (X, y, L), epochs=1, batch_size=8, quiet=True)
    assert "epoch" not in capsys.readouterr().err


def test_bad_token_id_is_reported_at_its_data_set_row_before_training():
    from rnnkit.models import SequenceClassifier

    rng = np.random.default_rng(0)
    X = rng.integers(1, 10, size=(80, 6))
    y = rng.integers(0, 2, size=80)
    X[57, 2] = 10  # one past the vocabulary
    model = SequenceClassifier(10, 2, embedding_dim=4, hidden_size=4, seed=0)
    trainer = Trainer(model, quiet=True)
    with pytest.raises(IndexError, match=r"train X contains id 10 at position \(57, 2\)"):
        trainer.fit((X, y), epochs=1, batch_size=8)
    assert trainer.history.epochs == []  # nothing ran
    X[57, 2] = 3
    lengths = np.full(80, 6)
    lengths[5] = 2
    Xv = X.copy()
    Xv[5, 4] = 99  # padding past row 5's length is not checked
    Xv[9, 0] = -1
    with pytest.raises(IndexError, match=r"val X contains a negative id -1 at position \(9, 0\)"):
        trainer.fit((X, y, lengths), (Xv, y, lengths), epochs=1, batch_size=8)


class _CreatesAFileWhenUnpickled:
    """A pickle payload: unpickling it calls open(marker, "w")."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare-pickle", "pickle-inside-npz"])
def test_loading_a_pickle_carrying_checkpoint_raises_format_error_and_runs_nothing(tmp_path, wrapped):
    from rnnkit import FormatError

    marker = tmp_path / "payload-ran"
    payload = {"format": "rnnkit.train.checkpoint", "evil": _CreatesAFileWhenUnpickled(str(marker))}
    path = tmp_path / "c.ckpt"
    if wrapped:  # an .npz whose entry is a pickled object array, named like a checkpoint's
        np.savez(path.open("wb"), __rnnkit__=np.array([payload], dtype=object))
    else:
        path.write_bytes(pickle.dumps(payload))
    for read in (load_checkpoint, lambda p: fit(make_model(), make_data(8), checkpoint=p, resume=True, quiet=True)):
        with pytest.raises(FormatError, match="not an rnnkit training checkpoint"):
            read(path)
        assert not marker.exists()


def test_checkpoints_are_rnnkit_files_readable_without_pickle(tmp_path):
    import json

    X, y, L = make_data(40)
    path = tmp_path / "c.ckpt"
    fit(make_model(), (X, y, L), epochs=1, batch_size=16, checkpoint=path, quiet=True)
    with np.load(path, allow_pickle=False) as archive:
        document = json.loads(archive["__rnnkit__"].tobytes().decode("utf-8"))
    assert document["format"] == "rnnkit" and "checkpoint" in document
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and set(state["model"]) == set(make_model().state_dict())
