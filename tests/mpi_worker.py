"""What every MPI rank runs for tests/test_distributed.py: ``mpiexec -n N python mpi_worker.py
CASE OUT_DIR``. Rank 0 pickles what the test compares into OUT_DIR/results.pkl.

Cases: "all" (training, resume, dropout streams, errors every rank raises, corpus building) and
"fail" (one rank raises in the middle of training: the job must end, not hang).

The data, models and settings are built here for both sides, so the test process trains the
single-process reference from the same ones. Nothing here imports mpi4py at import time.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import sys

import numpy as np

V, C, T = 13, 3, 7
GLOBAL_BATCH = 12  # per-rank batch: 12 / ranks (2 and 3 ranks)


def classifier_data(n=37, seed=0):
    """(X, y, lengths): n = 37 and bucket_pool 2 give global batches of 12, 12, 12 and 1 rows,
    so with 2 or 3 ranks some get 1 row and some none."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, n)
    lengths = rng.integers(1, T + 1, n)
    X = np.zeros((n, T), np.int64)
    for i in range(n):
        X[i, :lengths[i]] = np.where(rng.random(lengths[i]) < 0.6, 2 + 3 * y[i], rng.integers(2, V, lengths[i]))
    return X, y, lengths


def lm_data(n=29, seed=1):
    """(X, Y, lengths) for a language model: per-step targets, masked beyond each length."""
    rng = np.random.default_rng(seed)
    stream = rng.integers(1, V, n * (T + 1))
    X = stream[:n * T].reshape(n, T).copy()
    Y = stream[1:n * T + 1].reshape(n, T).copy()
    lengths = rng.integers(2, T + 1, n)
    for i in range(n):
        X[i, lengths[i]:] = 0
        Y[i, lengths[i]:] = 0
    return X, Y, lengths


def classifier(seed=0, dropout=0.0):
    from rnnkit.models import SequenceClassifier

    return SequenceClassifier(V, C, embedding_dim=5, hidden_size=6, dropout=dropout, dtype=np.float64, seed=seed)


def language_model(seed=0):
    from rnnkit.models import LanguageModel

    return LanguageModel(V, embedding_dim=5, hidden_size=6, dtype=np.float64, seed=seed)


def batch_norm_classifier(seed=0):
    """Embedding -> LSTM with batch normalisation inside the recurrence -> last step -> Linear:
    a model with buffers (running statistics) that each rank's forward updates."""
    from rnnkit import nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__(seed)
            self.embed = nn.Embedding(V, 5, dtype=np.float64, seed=seed)
            self.rnn = nn.LSTM(5, 6, norm="batch", dtype=np.float64, seed=seed + 1)
            self.head = nn.LastStep(batch_first=True)
            self.fc = nn.Linear(6, C, dtype=np.float64, seed=seed + 2)

        def forward(self, x, *, lengths=None, training=False):
            y = self.rnn.forward(self.embed.forward(x), lengths=lengths, training=training)
            return self.fc.forward(self.head.forward(y, lengths=lengths))

        def backward(self, grad):
            self.embed.backward(self.rnn.backward(self.head.backward(self.fc.backward(grad))))

    return Classifier()


def classifier_options(seed=5, **extra):
    """Trainer options of the classifier runs: Adam, L2 penalties, clipping, a schedule,
    metrics and small length pools (so batches are bucketed)."""
    from rnnkit.train import Regularizer, StepLR

    return dict(dict(lr=0.05, regularizer=Regularizer(input_l2=1e-3, recurrent_l2=1e-3), clip_norm=0.5,
                     schedule=StepLR(1, 0.7), metrics=["accuracy", "perplexity"], quiet=True, seed=seed,
                     bucket_pool=2), **extra)


def lm_options(seed=5, **extra):
    """The language model: SGD with momentum, padding ignored (ignore_index 0) besides the mask."""
    from rnnkit.train import CrossEntropy

    return dict(dict(loss=CrossEntropy(ignore_index=0), optimizer="sgd", lr=0.3,
                     optimizer_options={"momentum": 0.9}, clip_value=0.2, metrics=["accuracy"], quiet=True,
                     seed=seed, bucket_pool=2), **extra)


def documents():
    """A small corpus with repeated words (so min_df, max_df and ties matter)."""
    words = ("river stone cloud river lamp stone glass river cloud paper lamp stone ink glass "
             "paper river cloud ink stone").split()
    rng = np.random.default_rng(3)
    return [" ".join(rng.choice(words, rng.integers(0, 9))) for _ in range(23)]


def own_documents(docs, rank, size, leave_last_empty=False):
    """Rank ``rank``'s documents: every size-th one (not contiguous, to show the rank order
    is what counts); with ``leave_last_empty`` the last rank gets none."""
    if leave_last_empty:
        return [] if rank == size - 1 else docs[rank::size - 1]
    return docs[rank::size]


def in_rank_order(docs, size, leave_last_empty=False):
    """The documents of ranks 0, 1, ... one after the other: the single-process corpus."""
    return [d for r in range(size) for d in own_documents(docs, r, size, leave_last_empty)]


BOW_SETTINGS = {
    "count": {},
    "tfidf": dict(weighting="tfidf", min_df=2, max_df=0.8, max_features=6, sublinear_tf=True),
    "binary": dict(weighting="binary", max_features=4, ngram_range=(1, 2)),
    "fixed": dict(weighting="tfidf", vocabulary=["stone", "ink", "absent", "river"]),
    "chars": dict(analyzer="char_wb", ngram_range=(2, 3), min_df=0.2, weighting="tfidf", smooth_idf=False),
}


def bag_of_words_results(bow):
    return {"vocabulary": bow.vocabulary_, "df": bow.document_frequency_, "idf": getattr(bow, "idf_", None)}


# ---------------------------------------------------------------------- on the ranks
def _digest(model):
    h = hashlib.sha256()
    for k, v in model.parameters().items():
        h.update(k.encode() + v.tobytes())
    return h.hexdigest()


def _train(comm, out):
    from rnnkit.train import NonFiniteLossError, Trainer, load_checkpoint
    from rnnkit.distributed import Group

    rank, size = comm.Get_rank(), comm.Get_size()
    batch = GLOBAL_BATCH // size
    res = {}
    X, y, L = classifier_data()
    Xv, yv, Lv = classifier_data(11, seed=2)
    # ranks other than 0 start from other weights and another shuffling seed: rank 0's are broadcast
    model = classifier(seed=0 if rank == 0 else 100 + rank)
    trainer = Trainer(model, checkpoint=os.path.join(out, "classifier.ckpt"),
                      distributed="mpi", **classifier_options(seed=5 if rank == 0 else rank))
    history = trainer.fit((X, y, L), (Xv, yv, Lv), epochs=2, batch_size=batch)
    res["classifier"] = {"params": model.state_dict(), "history": history.history,
                         "evaluate": trainer.evaluate((Xv, yv, Lv), batch_size=2),
                         "predict": trainer.predict(Xv, Lv, batch_size=3),
                         "ranks_agree": len(set(comm.allgather(_digest(model)))) == 1,
                         "same_on_every_rank": len(set(comm.allgather(repr(trainer.evaluate((Xv, yv, Lv)))))) == 1}

    Xl, Yl, Ll = lm_data()
    lm = language_model(seed=0 if rank == 0 else 7)
    lm_trainer = Trainer(lm, distributed=comm, **lm_options())
    lm_history = lm_trainer.fit((Xl, Yl, Ll), epochs=2, batch_size=batch)
    res["lm"] = {"params": lm.state_dict(), "history": lm_history.history,
                 "predict": lm_trainer.predict(Xl[:5], Ll[:5]),
                 "ranks_agree": len(set(comm.allgather(_digest(lm)))) == 1}

    # resumed in mid-epoch from the single-process checkpoint the test wrote
    resumed_path = os.path.join(out, "resumed.ckpt")
    if rank == 0:  # rank 0 alone reads checkpoints
        shutil.copy(os.path.join(out, "mid.ckpt"), resumed_path)
    resumed = classifier(seed=99)
    Trainer(resumed, checkpoint=resumed_path, distributed="mpi", **classifier_options()).fit(
        (X, y, L), (Xv, yv, Lv), epochs=2, batch_size=batch, resume=True)
    res["resumed"] = {"params": resumed.state_dict()}

    # dropout: the ranks draw different masks; a run resumed on as many ranks draws the same again
    group = Group(comm)
    probe = classifier(dropout=0.3)
    before = probe.rng_state()
    with group.rank_streams(probe, (0, 0)):
        draws = comm.allgather(probe.drop._rng.random(4).tolist())
    res["streams_differ"] = len({tuple(d) for d in draws}) == size
    res["streams_restored"] = probe.rng_state() == before
    whole = classifier(seed=1, dropout=0.3)
    Trainer(whole, distributed="mpi", **classifier_options()).fit((X, y, L), epochs=2, batch_size=batch)
    halves = classifier(seed=1, dropout=0.3)
    initial_rng = halves.rng_state()  # rank 0's is broadcast: its own modules are not all seeded
    path = os.path.join(out, "dropout.ckpt")
    Trainer(halves, checkpoint=path, distributed="mpi", **classifier_options()).fit((X, y, L), epochs=1, batch_size=batch)
    again = classifier(seed=42, dropout=0.3)
    Trainer(again, checkpoint=path, distributed="mpi", **classifier_options()).fit(
        (X, y, L), epochs=2, batch_size=batch, resume=True)
    res["dropout_resume_identical"] = _digest(again) == _digest(whole)
    res["dropout_ranks_agree"] = len(set(comm.allgather(_digest(whole)))) == 1
    res["dropout_model_rng_kept"] = load_checkpoint(path)["model_rng"] == initial_rng

    # batch norm's running statistics: each rank's forward saw its own rows; rank 0's are kept
    normed = batch_norm_classifier()
    Trainer(normed, distributed="mpi", **classifier_options()).fit((X, y, L), epochs=1, batch_size=batch)
    buffers = {k: v.copy() for k, v in normed.buffers().items()}
    res["buffers_moved"] = bool(buffers) and all(np.any(v != batch_norm_classifier().buffers()[k])
                                                 for k, v in buffers.items() if "mean" in k)
    res["buffers_agree"] = len(set(comm.allgather(hashlib.sha256(b"".join(
        v.tobytes() for v in buffers.values())).hexdigest()))) == 1

    # errors every rank raises at the same point propagate normally on every rank
    errors = {}

    def nan_on_rank_0(out_, y_, mask):
        from rnnkit.train import cross_entropy

        value, grad, count = cross_entropy(out_, y_, mask=mask)
        return (float("nan") if rank == 0 else value), grad, count

    drifting = classifier()

    def drift_on_last_rank(out_, y_, mask):
        from rnnkit.train import cross_entropy

        if rank == size - 1:  # as if its Allreduce had summed differently
            drifting.parameters()["fc.b"][0] += 1e-12
        return cross_entropy(out_, y_, mask=mask)

    for name, call, expected in [
            ("drift", lambda: Trainer(drifting, distributed="mpi", **classifier_options(loss=drift_on_last_rank)).fit(
                (X, y, L), batch_size=batch), ValueError),
            ("different_model", lambda: Trainer(classifier() if rank == 0 else language_model(), distributed="mpi",
                                                **classifier_options()).fit((X, y, L), batch_size=batch), ValueError),
            ("nonfinite", lambda: Trainer(classifier(), distributed="mpi", **classifier_options(loss=nan_on_rank_0)).fit(
                (X, y, L), batch_size=batch), NonFiniteLossError),
            ("unwritable", lambda: Trainer(classifier(), checkpoint="/proc/rnnkit-no/such.ckpt", distributed="mpi",
                                           **classifier_options()).fit((X, y, L), batch_size=batch), OSError),
            ("different_data", lambda: Trainer(classifier(), distributed="mpi", **classifier_options()).fit(
                (X, y if rank == 0 else y[::-1].copy(), L), batch_size=batch), ValueError),
            ("different_batch", lambda: Trainer(classifier(), distributed="mpi", **classifier_options()).fit(
                (X, y, L), batch_size=batch + rank), ValueError)]:
        try:
            call()
            errors[name] = "no error"
        except expected as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
    res["errors"] = comm.gather(errors)
    return res


def _corpus(comm):
    from rnnkit.text import BagOfWords, Tokenizer, Vocabulary

    rank, size = comm.Get_rank(), comm.Get_size()
    docs = documents()
    res = {}
    for empty in (False, True):
        own = own_documents(docs, rank, size, leave_last_empty=empty)
        vocab = Vocabulary.from_texts(own, min_freq=2, distributed="mpi")
        streams = Vocabulary([Tokenizer(ngram_range=(1, 2))(d) for d in own], max_size=9, bos=True,
                             distributed=comm)
        res[("vocabulary", empty)] = vocab.to_dict()
        res[("streams", empty)] = streams.to_dict()
        for name, settings in BOW_SETTINGS.items():
            bow = BagOfWords(**settings)
            rows = bow.fit_transform(own, distributed="mpi")
            res[(name, empty)] = dict(bag_of_words_results(bow), rows=comm.gather(rows),
                                      transform=bow.transform(docs[:3]))
    try:
        Vocabulary.from_texts(docs if rank == 0 else [], distributed="mpi")
        Vocabulary.from_texts([], distributed="mpi")
        res["empty_everywhere"] = "no error"
    except ValueError as exc:
        res["empty_everywhere"] = str(exc)
    return res


def _fail(comm):
    """Rank 1 raises at its third loss call; rank 0 would wait in the Allreduce forever."""
    from rnnkit.train import Trainer, cross_entropy

    calls = [0]

    def loss(out, y, mask):
        calls[0] += 1
        if comm.Get_rank() == 1 and calls[0] == 3:
            raise RuntimeError("deliberate failure on rank 1")
        return cross_entropy(out, y, mask=mask)

    X, y, L = classifier_data()
    Trainer(classifier(), distributed="mpi", **classifier_options(loss=loss)).fit((X, y, L), epochs=50, batch_size=2)
    print("training finished: the failure did not stop the job", flush=True)


def main(case, out):
    import rnnkit
    from mpi4py import MPI

    rnnkit.set_num_threads(1)  # the ranks share the test machine's cores
    comm = MPI.COMM_WORLD
    if case == "fail":
        _fail(comm)
        return
    results = {"size": comm.Get_size(), "train": _train(comm, out), "corpus": _corpus(comm)}
    if comm.Get_rank() == 0:
        with open(os.path.join(out, "results.pkl"), "wb") as f:
            pickle.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
