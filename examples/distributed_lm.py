"""A word-level LSTM language model trained data-parallel on MPI ranks, with its vocabulary
built from each rank's own share of the texts (CPython's pydoc help topics, offline).

    mpiexec -n 4 python -m mpi4py examples/distributed_lm.py [--epochs 2]
    python examples/distributed_lm.py          # one process: a group of one rank

Every rank runs this script. The vocabulary: each rank reads its own consecutive share of the
topics and ``Vocabulary.from_texts(..., distributed=...)`` adds up the counts of all ranks - the
vocabulary one process builds from all topics. Training: every rank holds the same id windows
and ``Trainer(..., distributed=...)`` gives each rank its share of every global batch of
``--batch`` x ranks windows, so ``mpiexec -n 2 ... --batch 16`` trains as ``python ...
--batch 32`` (up to float32 rounding). Rank 0 alone prints and writes the checkpoint.
``python -m mpi4py`` makes an exception anywhere in the script end every rank. See
docs/distributed.md.
"""
from __future__ import annotations

import argparse
import importlib.util

import numpy as np

from rnnkit.models import LanguageModel, lm_windows, unigram_perplexity
from rnnkit.text import Vocabulary
from rnnkit.train import Trainer


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16, help="windows per rank and step")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=35)
    parser.add_argument("--max-words", type=int, default=None, help="use the first words of the corpus only")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (rank 0 writes it); resumes from it")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    if importlib.util.find_spec("mpi4py") is None:
        print("mpi4py is not installed (pip install 'rnnkit[mpi]'): training in this process alone")
        distributed, rank, size, own = None, 0, 1, (lambda texts: texts)
    else:
        from rnnkit.distributed import Group

        distributed = Group()  # MPI.COMM_WORLD; the same as distributed="mpi"
        rank, size, own = distributed.rank, distributed.size, distributed.shard

    from pydoc_data.topics import topics

    texts = [topics[k] for k in sorted(topics)]
    if args.max_words:  # keep the topics that hold the first max_words words
        counts = np.cumsum([len(t.split()) for t in texts])
        texts = texts[:int(np.searchsorted(counts, args.max_words)) + 1]
    vocab = Vocabulary.from_texts(own(texts), min_freq=2, eos=True, distributed=distributed)
    # every rank encodes all texts the same way: the training windows are the same everywhere
    ids = np.concatenate([vocab.encode_text(t) for t in texts])
    X, Y = lm_windows(ids, args.seq_len)
    cut = len(X) * 9 // 10
    model = LanguageModel(len(vocab), embedding_dim=64, hidden_size=args.hidden, vocab=vocab, level="word", seed=0)
    trainer = Trainer(model, optimizer="adam", lr=3e-3, clip_norm=5.0, metrics=["perplexity"], quiet=args.quiet,
                      checkpoint=args.checkpoint, seed=0, distributed=distributed)
    history = trainer.fit((X[:cut], Y[:cut]), (X[cut:], Y[cut:]), epochs=args.epochs, batch_size=args.batch,
                          resume=args.checkpoint is not None)
    if rank == 0:
        print(f"{size} rank(s); vocabulary of {len(vocab)} words from {len(texts)} topics; {cut} training windows "
              f"of {args.seq_len} words, global batch {args.batch * size}")
        for epoch, loss, val in zip(history.epochs, history["loss"], history["val_perplexity"]):
            print(f"epoch {epoch}: training loss {loss:.3f}, validation perplexity {val:.1f}")
        print(f"validation perplexity {history['val_perplexity'][-1]:.1f} (unigram baseline "
              f"{unigram_perplexity(Y[:cut], Y[cut:], len(vocab)):.1f})")
        print("sample:", model.generate("the", 12, top_k=10, seed=0))


if __name__ == "__main__":
    main()
