"""Suite "e2e" of ``rnnkit bench``: whole training epochs, rnnkit's Trainer vs the same model and
loop written in torch, same threads, tokens per second.

- ``lm``: a character-level LSTM language model on CPython's pydoc help topics (what
  ``rnnkit demo`` trains): Embedding(V, 32) -> LSTM(256) -> Linear(V) per step, softmax
  cross-entropy, Adam (lr 2e-3), gradient clipping to global norm 5, shuffled batches of 32
  windows of 64 characters; one epoch = 97 batches.
- ``classifier``: a word-level text classifier on the same corpus: windows of 50 words from the
  8 longest help topics, labelled by their topic; Embedding(V, 64) -> LSTM(128) -> last step ->
  Linear(8), cross-entropy, Adam (lr 1e-3), clipping to 5, shuffled batches of 32; one epoch =
  every window.

rnnkit: ``LanguageModel`` / ``SequenceClassifier`` trained with ``Trainer.fit(epochs=1)``
(quiet). torch: ``nn.Embedding``/``nn.LSTM(batch_first=True)``/``nn.Linear``,
``CrossEntropyLoss``, ``optim.Adam``, ``clip_grad_norm_``, the batches of one
``torch.randperm``. Each timed call is one epoch, continuing from the previous call's weights
(the cost of an epoch does not depend on the weights). tokens/s = tokens in the epoch's
batches / the median epoch time.
"""
from __future__ import annotations

import numpy as np

LM = dict(embedding_dim=32, hidden_size=256, seq_len=64, batch_size=32, batches=97, lr=2e-3)
CLASSIFIER = dict(embedding_dim=64, hidden_size=128, seq_len=50, batch_size=32, classes=8, lr=1e-3)
QUICK = dict(hidden_size=16, batches=4, windows_per_class=8)
CLIP_NORM = 5.0


def _topics():
    from pydoc_data.topics import topics

    return {k: topics[k] for k in sorted(topics)}


def lm_data(quick: bool):
    """(X, Y, vocabulary size): the windows of the first ``batches`` batches of the corpus."""
    from .cli import _default_corpus
    from .models import char_vocabulary, lm_windows

    text, _ = _default_corpus()  # the demo's corpus
    vocab = char_vocabulary(text)
    X, Y = lm_windows(np.array(vocab.encode(list(text))), LM["seq_len"])
    n = LM["batch_size"] * (QUICK["batches"] if quick else LM["batches"])
    return X[:n], Y[:n], len(vocab)


def classifier_data(quick: bool):
    """(X, y, vocabulary size): word windows of the longest topics, labelled by topic."""
    from .text import Vocabulary, tokenize

    topics = _topics()
    longest = sorted(topics, key=lambda k: -len(topics[k]))[:CLASSIFIER["classes"]]
    docs = [tokenize(topics[k]) for k in longest]
    vocab = Vocabulary(docs)
    T = CLASSIFIER["seq_len"]
    X, y = [], []
    for label, tokens in enumerate(docs):
        ids = np.array(vocab.encode(tokens))
        windows = ids[:len(ids) // T * T].reshape(-1, T)
        if quick:
            windows = windows[:QUICK["windows_per_class"]]
        X.append(windows)
        y.append(np.full(len(windows), label))
    return np.concatenate(X), np.concatenate(y), len(vocab)


def _rnnkit_epoch(model, X, y, batch_size, lr):
    from .train import Trainer

    trainer = Trainer(model, optimizer="adam", lr=lr, clip_norm=CLIP_NORM, quiet=True, seed=0)

    def epoch():
        trainer.fit((X, y), epochs=1, batch_size=batch_size)
        trainer.history = type(trainer.history)()  # each call is a fresh first epoch

    return epoch


def _torch_epoch(torch, model, X, y, batch_size, lr, per_step):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)

    def epoch():
        order = torch.randperm(len(Xt), generator=gen)
        for start in range(0, len(Xt), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            out = model(Xt[idx])
            target = yt[idx]
            loss = loss_fn(out.reshape(-1, out.shape[-1]), target.reshape(-1)) if per_step else loss_fn(out, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            opt.step()

    return epoch


def _torch_models(torch):
    class LanguageModel(torch.nn.Module):
        def __init__(self, V, E, H):
            super().__init__()
            self.embed, self.rnn, self.fc = torch.nn.Embedding(V, E), torch.nn.LSTM(E, H, batch_first=True), torch.nn.Linear(H, V)

        def forward(self, ids):
            return self.fc(self.rnn(self.embed(ids))[0])

    class Classifier(torch.nn.Module):
        def __init__(self, V, E, H, C):
            super().__init__()
            self.embed = torch.nn.Embedding(V, E, padding_idx=0)
            self.rnn, self.fc = torch.nn.LSTM(E, H, batch_first=True), torch.nn.Linear(H, C)

        def forward(self, ids):
            return self.fc(self.rnn(self.embed(ids))[0][:, -1])

    return LanguageModel, Classifier


def e2e_cases(args, torch, Case):
    """One Case per model x implementation; ``Case.tokens`` is the tokens of one epoch."""
    from .models import LanguageModel, SequenceClassifier

    hidden = (lambda h: QUICK["hidden_size"]) if args.quick else (lambda h: h)
    TorchLM, TorchClassifier = _torch_models(torch) if torch is not None else (None, None)
    cases = []

    X, Y, V = lm_data(args.quick)
    E, H = LM["embedding_dim"], hidden(LM["hidden_size"])
    shape = f"{len(X) // LM['batch_size']} batches of {LM['batch_size']}x{LM['seq_len']} V={V} E={E} H={H}"
    fns = {}
    if "rnnkit" in args.impls:
        fns["rnnkit"] = _rnnkit_epoch(LanguageModel(V, embedding_dim=E, hidden_size=H, seed=0), X, Y,
                                      LM["batch_size"], LM["lr"])
    if TorchLM is not None:
        fns["torch"] = _torch_epoch(torch, TorchLM(V, E, H), X, Y, LM["batch_size"], LM["lr"], per_step=True)
    for impl, fn in fns.items():
        cases.append(Case("e2e", "lm", shape, "train", impl, fn))
        cases[-1].tokens, cases[-1].note = X.size, f"{X.size} tokens per epoch"

    X, y, V = classifier_data(args.quick)
    E, H, C = CLASSIFIER["embedding_dim"], hidden(CLASSIFIER["hidden_size"]), CLASSIFIER["classes"]
    shape = f"{len(X)} windows of {CLASSIFIER['seq_len']} words V={V} E={E} H={H} C={C}"
    fns = {}
    if "rnnkit" in args.impls:
        fns["rnnkit"] = _rnnkit_epoch(SequenceClassifier(V, C, embedding_dim=E, hidden_size=H, seed=0), X, y,
                                      CLASSIFIER["batch_size"], CLASSIFIER["lr"])
    if TorchClassifier is not None:
        fns["torch"] = _torch_epoch(torch, TorchClassifier(V, E, H, C), X, y, CLASSIFIER["batch_size"],
                                    CLASSIFIER["lr"], per_step=False)
    for impl, fn in fns.items():
        cases.append(Case("e2e", "classifier", shape, "train", impl, fn))
        cases[-1].tokens, cases[-1].note = X.size, f"{X.size} tokens per epoch"
    return cases


def e2e_table(cases) -> str:
    groups = {}
    for c in cases:
        if c.suite == "e2e":
            groups.setdefault((c.cell, c.shape), {})[c.impl] = c
    lines = ["| model | epoch | rnnkit tokens/s | torch tokens/s | rnnkit/torch |", "|---|---|---:|---:|---:|"]
    for (model, shape), impls in groups.items():
        rate = {k: c.tokens / (c.median_ms * 1e-3) if getattr(c, "median_ms", None) else None
                for k, c in impls.items()}
        ratio = f"{rate['rnnkit'] / rate['torch']:.2f}x" if rate.get("rnnkit") and rate.get("torch") else "-"
        cells = [f"{rate[k]:,.0f}" if rate.get(k) else "-" for k in ("rnnkit", "torch")]
        lines.append(f"| {model} | {shape} | {cells[0]} | {cells[1]} | {ratio} |")
    return "\n".join(lines)
