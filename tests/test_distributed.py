"""rnnkit.distributed under real MPI ranks (mpiexec -n 2 and -n 3, through tests/mpi_launcher.py):
data-parallel training equals one process with the same global batch (float64 parameters to
1e-10, history, evaluate, predict, checkpoints), resume on another number of ranks, dropout
streams, errors raised on every rank, a failing rank ending the job, and Vocabulary /
BagOfWords fitted on sharded documents equal to one process. The ranks run tests/mpi_worker.py.
Skipped without mpi4py and mpiexec (pip install 'rnnkit[mpi]'); the checks that need no MPI run
anyway."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

import mpi_launcher
import mpi_worker as w
from rnnkit.distributed import Group, group
from rnnkit.text import BagOfWords, Tokenizer, Vocabulary
from rnnkit.train import CrossEntropy, Trainer, load_checkpoint

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_worker.py")
needs_mpi = pytest.mark.skipif(mpi_launcher.missing() is not None, reason=str(mpi_launcher.missing()))
TOL = 1e-10


def assert_close(a, b, where="state"):
    """Equal structure; floats (and float arrays) equal to TOL relative, everything else exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_close(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype.kind == "f" or isinstance(a, float):
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, err_msg=where)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


class _Stop(Exception):
    pass


# ---------------------------------------------------------------------- single-process references
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process with the global batch: the classifier (with its checkpoint), the language
    model, and a checkpoint left in mid-epoch by an interrupted run of the classifier."""
    where = tmp_path_factory.mktemp("reference")
    X, y, L = w.classifier_data()
    Xv, yv, Lv = w.classifier_data(11, seed=2)
    model = w.classifier()
    trainer = Trainer(model, checkpoint=where / "classifier.ckpt", **w.classifier_options())
    history = trainer.fit((X, y, L), (Xv, yv, Lv), epochs=2, batch_size=w.GLOBAL_BATCH)
    classifier = {"params": model.state_dict(), "history": history.history,
                  "evaluate": trainer.evaluate((Xv, yv, Lv), batch_size=2), "predict": trainer.predict(Xv, Lv),
                  "checkpoint": load_checkpoint(where / "classifier.ckpt")}
    Xl, Yl, Ll = w.lm_data()
    lm = w.language_model()
    lm_trainer = Trainer(lm, **w.lm_options())
    lm_history = lm_trainer.fit((Xl, Yl, Ll), epochs=2, batch_size=w.GLOBAL_BATCH)
    language_model = {"params": lm.state_dict(), "history": lm_history.history,
                      "predict": lm_trainer.predict(Xl[:5], Ll[:5])}
    # 4 training batches and 1 validation batch per epoch: the 8th loss call (epoch 2, batch 3)
    # stops the run after the checkpoint of epoch 2's 2nd batch
    ce, calls = CrossEntropy(), [0]

    def loss(out, y_, mask):
        calls[0] += 1
        if calls[0] > 7:
            raise _Stop
        return ce(out, y_, mask)

    with pytest.raises(_Stop):
        Trainer(w.classifier(), checkpoint=where / "mid.ckpt", checkpoint_every=1,
                **w.classifier_options(loss=loss)).fit((X, y, L), (Xv, yv, Lv), epochs=2, batch_size=w.GLOBAL_BATCH)
    state = load_checkpoint(where / "mid.ckpt")
    assert (state["epoch"], state["batch"]) == (1, 2)
    return {"classifier": classifier, "lm": language_model, "mid": where / "mid.ckpt"}


@pytest.fixture(scope="module", params=[2, 3], ids=["2 ranks", "3 ranks"])
def ranks(request, tmp_path_factory, reference):
    """The results of tests/mpi_worker.py's "all" case on 2 and 3 ranks: per-rank batches of 6
    and 4; the classifier's last global batch has 1 row, so some ranks get none, and the
    language model's 29 rows end with a batch of 5, split 3/2 and 2/2/1."""
    if mpi_launcher.missing():
        pytest.skip(mpi_launcher.missing())
    out = tmp_path_factory.mktemp(f"ranks{request.param}")
    with open(reference["mid"], "rb") as src, open(out / "mid.ckpt", "wb") as dst:
        dst.write(src.read())
    status, output, seconds = mpi_launcher.run_mpi(request.param, [WORKER, "all", str(out)], timeout=180)
    assert status == 0, f"mpiexec -n {request.param} ended with {status} after {seconds:.0f} s:\n{output}"
    with open(out / "results.pkl", "rb") as f:
        results = pickle.load(f)
    assert results["size"] == request.param
    results["out"] = out
    return results


# ---------------------------------------------------------------------- training
@needs_mpi
def test_parameters_after_two_epochs_equal_one_process_with_the_global_batch(ranks, reference):
    got, ref = ranks["train"]["classifier"], reference["classifier"]
    assert got["ranks_agree"], "the ranks' parameters differ"
    assert_close(got["params"], ref["params"], "parameters")
    # not merely equal within the tolerance: trained (the reference moved from its start)
    start = w.classifier().state_dict()
    assert max(np.abs(ref["params"][k] - start[k]).max() for k in start) > 0.05


@needs_mpi
def test_history_evaluate_and_predict_equal_one_process(ranks, reference):
    got, ref = ranks["train"]["classifier"], reference["classifier"]
    assert_close(got["history"], ref["history"], "history")
    assert_close(got["evaluate"], ref["evaluate"], "evaluate")
    assert got["same_on_every_rank"]
    assert got["predict"].shape == ref["predict"].shape
    assert_close(got["predict"], ref["predict"], "predict")


@needs_mpi
def test_checkpoint_equals_the_single_process_checkpoint(ranks, reference):
    """Rank 0 wrote it; the plan, generator states, counters and history are those of one
    process, the arrays equal to rounding."""
    got, ref = load_checkpoint(ranks["out"] / "classifier.ckpt"), reference["classifier"]["checkpoint"]
    # modules built without a seed (the pooling head, which draws nothing) start from fresh
    # entropy in every process: compare the generators that are seeded
    a, b = w.classifier().rng_state(), w.classifier().rng_state()
    unseeded = [path for path in a if a[path] != b[path]]
    assert unseeded == ["pool"]
    got, ref = ({**state, "model_rng": {k: v for k, v in state["model_rng"].items() if k not in unseeded}}
                for state in (got, ref))
    assert_close(got, ref, "checkpoint")


@needs_mpi
def test_language_model_with_masked_steps_and_ignored_padding_equals_one_process(ranks, reference):
    got, ref = ranks["train"]["lm"], reference["lm"]
    assert got["ranks_agree"]
    assert_close(got["params"], ref["params"], "parameters")
    assert_close(got["history"], ref["history"], "history")
    assert_close(got["predict"], ref["predict"], "predict")


@needs_mpi
def test_resume_in_mid_epoch_from_a_single_process_checkpoint_reproduces_the_run(ranks, reference):
    assert_close(ranks["train"]["resumed"]["params"], reference["classifier"]["params"], "parameters")


@needs_mpi
def test_dropout_streams_differ_between_ranks_and_resume_exactly(ranks):
    t = ranks["train"]
    assert t["streams_differ"] and t["streams_restored"]
    assert t["dropout_ranks_agree"]
    assert t["dropout_resume_identical"]
    assert t["dropout_model_rng_kept"]


@needs_mpi
def test_running_statistics_are_rank_0s_on_every_rank_after_an_epoch(ranks):
    assert ranks["train"]["buffers_moved"] and ranks["train"]["buffers_agree"]


@needs_mpi
def test_errors_every_rank_meets_are_raised_on_every_rank(ranks):
    """A NaN loss on rank 0 alone, an unwritable checkpoint (seen by rank 0 alone), other data,
    batch size or model on the other ranks, parameters drifting apart on the last rank: every
    rank raises, nobody aborts."""
    size = ranks["size"]
    others = list(range(1, size))  # every rank but 0 changed its data, batch size or model
    for rank, errors in enumerate(ranks["train"]["errors"]):
        assert errors["nonfinite"].startswith("NonFiniteLossError: loss is nan at epoch 1, batch 1"), (rank, errors)
        assert "cannot be written" in errors["unwritable"], (rank, errors)
        assert errors["drift"] == (f"ValueError: the parameters after epoch 1 differ between ranks: rank(s) "
                                   f"[{size - 1}] do not match rank 0; the MPI library's Allreduce gave the ranks "
                                   f"different sums"), (rank, errors)
        for name in ("different_data", "different_batch", "different_model"):
            assert (f"Trainer.fit arguments, data, model layout or Trainer options differ between ranks: "
                    f"rank(s) {others} do not match rank 0") in errors[name], (rank, errors)


# ---------------------------------------------------------------------- corpus building
@needs_mpi
@pytest.mark.parametrize("empty", [False, True], ids=["every rank has documents", "last rank has none"])
def test_vocabulary_from_sharded_documents_equals_one_process(ranks, empty):
    size, corpus = ranks["size"], ranks["corpus"]
    docs = w.in_rank_order(w.documents(), size, leave_last_empty=empty)
    assert corpus[("vocabulary", empty)] == Vocabulary.from_texts(docs, min_freq=2).to_dict()
    streams = Vocabulary([Tokenizer(ngram_range=(1, 2))(d) for d in docs], max_size=9, bos=True)
    assert corpus[("streams", empty)] == streams.to_dict()


@needs_mpi
@pytest.mark.parametrize("empty", [False, True], ids=["every rank has documents", "last rank has none"])
@pytest.mark.parametrize("name", sorted(w.BOW_SETTINGS))
def test_bag_of_words_from_sharded_documents_equals_one_process(ranks, name, empty):
    size, got = ranks["size"], ranks["corpus"][(name, empty)]
    docs = w.in_rank_order(w.documents(), size, leave_last_empty=empty)
    bow = BagOfWords(**w.BOW_SETTINGS[name])
    X = bow.fit_transform(docs)
    ref = w.bag_of_words_results(bow)
    assert got["vocabulary"] == ref["vocabulary"]
    np.testing.assert_array_equal(got["df"], ref["df"])
    assert got["df"].dtype == ref["df"].dtype == np.int64
    if ref["idf"] is None:
        assert got["idf"] is None
    else:
        np.testing.assert_array_equal(got["idf"], ref["idf"])
    rows = sp.vstack(got["rows"]).tocsr()  # the ranks' own rows, in rank order
    assert rows.shape == X.shape and rows.dtype == X.dtype
    assert abs(rows - X).max() == 0
    assert abs(got["transform"] - bow.transform(w.documents()[:3])).max() == 0


@needs_mpi
def test_a_corpus_empty_on_every_rank_is_an_error_on_every_rank(ranks):
    assert ranks["corpus"]["empty_everywhere"] == ("texts is empty on every rank: need at least one text to "
                                                   "build a vocabulary from")


# ---------------------------------------------------------------------- failure
@needs_mpi
def test_a_failing_rank_ends_the_job_with_its_error(tmp_path):
    """Rank 1 raises in the third batch while rank 0 waits in the Allreduce: the job ends with
    the error and the rank shown, well before the 50 epochs it was given."""
    status, output, seconds = mpi_launcher.run_mpi(2, [WORKER, "fail", str(tmp_path)], timeout=60)
    assert status is not None, f"the job hung:\n{output}"
    assert status != 0, output
    assert "rnnkit.distributed: rank 1 of 2 failed in Trainer.fit" in output, output
    assert "RuntimeError: deliberate failure on rank 1" in output, output
    assert "training finished" not in output, output
    assert seconds < 45, f"the job took {seconds:.0f} s to end"


@needs_mpi
def test_the_example_on_two_ranks_trains_as_one_process_with_their_global_batch():
    """examples/distributed_lm.py as docs/distributed.md launches it: rank 0 alone prints, and
    2 ranks x 8 windows give one process's numbers with 16 (float32: to the printed digits)."""
    script = os.path.join(os.path.dirname(WORKER), os.pardir, "examples", "distributed_lm.py")
    quick = ["--epochs", "1", "--max-words", "3000", "--hidden", "16", "--quiet"]
    status, two, _ = mpi_launcher.run_mpi(2, ["-m", "mpi4py", script, *quick, "--batch", "8"], timeout=120)
    assert status == 0, two
    status, one, _ = mpi_launcher.run([sys.executable, script, *quick, "--batch", "16"], timeout=120)
    assert status == 0, one
    assert two.count("validation perplexity") == 2, two  # the epoch line and the summary, once
    # the sampled words are left out: a sample may follow a rounding difference of the logits
    numbers = [[line for line in out.replace("2 rank(s)", "1 rank(s)").splitlines() if not line.startswith("sample")]
               for out in (two, one)]
    assert numbers[0] == numbers[1]


@needs_mpi
def test_the_scaling_bench_runs():
    """bench/distributed.py --quick (a tiny vocabulary and corpus): every table comes out."""
    script = os.path.join(os.path.dirname(WORKER), os.pardir, "bench", "distributed.py")
    status, output, _ = mpi_launcher.run([sys.executable, script, "--quick"], timeout=300)
    assert status == 0, output
    for line in ("| 1 rank(s) x 2 thread(s) |", "| 2 rank(s) x 1 thread(s) |", "| 64 KiB |", "| 64 | "):
        assert line in output, output


# ---------------------------------------------------------------------- without MPI
def test_importing_rnnkit_does_not_import_mpi4py():
    code = ("import sys, rnnkit, rnnkit.train, rnnkit.text, rnnkit.models, rnnkit.distributed; "
            "sys.exit('mpi4py' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(
        os.path.abspath(__import__("rnnkit").__file__))), os.environ.get("PYTHONPATH")])))
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


@pytest.mark.parametrize("n", [0, 1, 2, 5, 12, 13])
@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_shards_follow_each_other_and_differ_by_at_most_one_row(n, size):
    parts = []
    for rank in range(size):
        g = Group.__new__(Group)  # the split alone: no communicator needed
        g.rank, g.size = rank, size
        parts.append(g.shard(np.arange(n)))
    assert np.array_equal(np.concatenate(parts), np.arange(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_bad_distributed_argument_is_named():
    assert group(None) is None
    with pytest.raises(ValueError, match="distributed must be None, 'mpi', an mpi4py communicator"):
        Trainer(w.classifier(), distributed="nccl")
    with pytest.raises(ValueError, match="distributed must be None, 'mpi'"):
        Vocabulary([["a"]], distributed="horovod")
