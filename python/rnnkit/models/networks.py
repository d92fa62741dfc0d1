"""Network modules (rnnkit.nn Module contract): ``SequenceClassifier``, ``LanguageModel`` and the
bag-of-words baseline ``MLPClassifier``; helpers for language-model data."""
from __future__ import annotations

import numpy as np

from .. import _device
from .. import nn
from .._runtime import govern_blas
from ..nn.recurrent import recurrent_layer
from .._checks import check_ids, check_positive_int
from ..train.losses import softmax
from ._decoding import check_sampling, decode

__all__ = ["SequenceClassifier", "LanguageModel", "MLPClassifier", "lm_windows", "unigram_perplexity",
           "char_vocabulary"]

_POOLS = {"last": nn.LastStep, "mean": nn.MeanPool, "max": nn.MaxPool}


def checked_token_ids(ids, vocab_size: int):
    """Batch-first token ids checked on the host (a bad id is named at its position in the
    caller's array), returned where ``ids`` live: a model on a device gets device ids from its
    Trainer."""
    return _device.put_like(check_ids(_device.to_host(ids), vocab_size, batch_first=True,
                                      vocabulary="vocab_size"), ids)


class SequenceClassifier(nn.Module):
    """Token ids -> class logits: Embedding -> recurrent stack -> pooling head -> dropout ->
    Linear (the lecture's single-output RNN).

    forward(ids (B, T) ints, *, lengths (B,), training) -> logits (B, num_classes); batch-first
    ids as ``rnnkit.text.to_sequences`` returns them (internally time-major). ``pooling``:
    "last" (output at each sequence's last valid step), "mean" or "max" over valid steps.
    Parameters: ``embed.W``, ``rnn.l{k}.{fwd|bwd}.{Wx,Wh,b,bh}``, ``fc.W``, ``fc.b``.
    """

    def __init__(self, vocab_size, num_classes, *, embedding_dim=64, hidden_size=64, num_layers=1,
                 cell="lstm", bidirectional=False, pooling="last", dropout=0.0, recurrent_dropout=0.0,
                 padding_idx=0, dtype=np.float32, seed=None):
        super().__init__(seed)
        if pooling not in _POOLS:
            raise ValueError(f"pooling must be one of {sorted(_POOLS)}, got {pooling!r}")
        ss = np.random.SeedSequence(seed).spawn(4)
        self.num_classes = int(num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.embed = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx, dtype=dtype,
                                  seed=ss[0].generate_state(1)[0])
        self.rnn = recurrent_layer(cell)(embedding_dim, hidden_size, num_layers, bidirectional=bidirectional, batch_first=False,
                                     dropout=dropout, recurrent_dropout=recurrent_dropout, dtype=dtype,
                                     seed=int(ss[1].generate_state(1)[0]))
        self.pool = _POOLS[pooling](batch_first=False)
        self.drop = nn.Dropout(dropout, seed=int(ss[2].generate_state(1)[0]))
        self.fc = nn.Linear(self.rnn.output_size, self.num_classes, dtype=dtype, seed=int(ss[3].generate_state(1)[0]))

    def forward(self, ids, *, lengths=None, training=False):
        # checked batch-first, so a bad id is reported at its position in the caller's array
        ids = checked_token_ids(ids, self.embed.num_embeddings)
        x = self.embed.forward(ids.T)                              # (T, B, E)
        y = self.rnn.forward(x, lengths=lengths, training=training)  # (T, B, H)
        h = self.drop.forward(self.pool.forward(y, lengths=lengths), training=training)
        return self.fc.forward(h)

    def backward(self, grad):
        dy = self.pool.backward(self.drop.backward(self.fc.backward(grad)))
        self.embed.backward(self.rnn.backward(dy))
        return None

    def predict_proba(self, ids, lengths=None):
        return softmax(self.forward(ids, lengths=lengths).astype(np.float64))


class LanguageModel(nn.Module):
    """Next-token prediction: Embedding -> recurrent stack -> dropout -> per-step Linear.

    forward(ids (B, T), *, lengths, training) -> logits (B, T, vocab_size): position t predicts
    token t + 1 (train with ``lm_windows`` targets and cross-entropy). ``vocab`` (a
    ``rnnkit.text.Vocabulary``) and ``level`` ("char": tokens are characters, joined with "";
    "word": joined with " ") let ``generate`` take and return text.
    """

    def __init__(self, vocab_size, *, embedding_dim=32, hidden_size=128, num_layers=1, cell="lstm",
                 dropout=0.0, recurrent_dropout=0.0, vocab=None, level="char", dtype=np.float32, seed=None):
        super().__init__(seed)
        if level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {level!r}")
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"vocab has {len(vocab)} tokens but vocab_size is {vocab_size}")
        ss = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(4)]
        self.vocab_size, self.vocab, self.level, self.cell = int(vocab_size), vocab, level, cell
        self.embed = nn.Embedding(vocab_size, embedding_dim, dtype=dtype, seed=ss[0])
        self.rnn = recurrent_layer(cell)(embedding_dim, hidden_size, num_layers, dropout=dropout, batch_first=False,
                                     recurrent_dropout=recurrent_dropout, return_state=True, dtype=dtype,
                                     seed=ss[1])
        self.drop = nn.Dropout(dropout, seed=ss[2])
        self.fc = nn.Linear(self.rnn.output_size, vocab_size, batch_first=False, dtype=dtype, seed=ss[3])

    def _logits(self, ids_tm, lengths, training, state):
        x = self.embed.forward(ids_tm)
        y, states = self.rnn.forward(x, lengths=lengths, training=training, initial_state=state)
        return self.fc.forward(self.drop.forward(y, training=training), lengths=lengths), states

    def _step(self, tokens, state):
        """The decoding step: tokens (N,) -> (logits (N, V), state)."""
        logits, state = self._logits(np.asarray(tokens, np.int64)[None, :], None, False, state)
        return logits[0], state

    def forward(self, ids, *, lengths=None, training=False):
        ids = checked_token_ids(ids, self.vocab_size)
        logits, _ = self._logits(ids.T, lengths, training, None)
        return logits.transpose(1, 0, 2)

    def backward(self, grad):
        grad = grad if _device.backend_of(grad) is not None else np.asarray(grad)
        dy = self.drop.backward(self.fc.backward(grad.transpose(1, 0, 2)))
        self.embed.backward(self.rnn.backward((dy, None)))
        return None

    def _encode(self, prompt) -> list:
        if isinstance(prompt, str):
            if self.vocab is None:
                raise ValueError("a text prompt needs the model's vocab (LanguageModel(..., vocab=))")
            tokens = list(prompt) if self.level == "char" else self.vocab.tokenizer(prompt)
            ids = self.vocab.encode(tokens)
        else:
            ids = [int(i) for i in prompt]
        if not ids:
            raise ValueError("prompt is empty: give at least one token to condition on")
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise IndexError(f"prompt id {bad[0]} is out of range for a vocabulary of {self.vocab_size}")
        return ids

    @govern_blas()
    def generate(self, prompt, n, temperature=1.0, top_k=None, greedy=False, seed=None):
        """Continues ``prompt`` (text, with ``vocab``, or a list of ids) by ``n`` tokens.

        Sampling from softmax(logits / temperature), restricted to the ``top_k`` most likely
        tokens when given; ``greedy=True`` takes the most likely token. The padding id 0 is never
        produced. ``seed`` makes sampling reproducible. Returns the continuation only: a str
        when the model has a vocab and the prompt was text, else a list of ids.
        """
        if self.device != "cpu":
            raise ValueError(f"generate runs on the host (its sampling loop is NumPy), but this "
                             f"model is on {self.device!r}; move it with model.to('cpu') first")
        n = check_positive_int(n, "n", 0)
        check_sampling(temperature, top_k)
        ids = self._encode(prompt)
        logits, state = self._logits(np.asarray(ids, np.int64)[:, None], None, False, None)
        out, _ = decode(self._step, logits[-1], state, max_len=n, greedy=greedy, temperature=temperature,
                        top_k=top_k, rng=np.random.default_rng(seed), banned=(0,))  # 0: padding
        out = out[0]
        if isinstance(prompt, str) and self.vocab is not None:
            toks = [self.vocab.id_to_token(i) for i in out]
            return ("" if self.level == "char" else " ").join(toks)
        return out


class _ReLU(nn.Module):
    def forward(self, x, *, lengths=None, training=False):
        self._mask = x > 0
        return x * self._mask

    def backward(self, grad):
        return grad * self._mask


class MLPClassifier(nn.Module):
    """Feed-forward classifier on feature vectors (e.g. a bag-of-words DTM): Linear -> ReLU ->
    Dropout, repeated for each of ``hidden_sizes``, then Linear -> logits. Accepts dense
    (N, F) arrays or scipy.sparse rows (densified per batch)."""

    def __init__(self, num_features, num_classes, *, hidden_sizes=(64,), dropout=0.0, dtype=np.float32,
                 seed=None):
        super().__init__(seed)
        ss = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(2 * len(hidden_sizes) + 1)]
        self.dtype = np.dtype(dtype)
        self.num_features, self.num_classes = int(num_features), int(num_classes)
        self._layers = []
        width = self.num_features
        for k, h in enumerate(hidden_sizes):
            self._layers += [self.add_module(f"fc{k}", nn.Linear(width, h, dtype=dtype, seed=ss[2 * k])),
                             self.add_module(f"relu{k}", _ReLU()),
                             self.add_module(f"drop{k}", nn.Dropout(dropout, seed=ss[2 * k + 1]))]
            width = h
        self._layers.append(self.add_module("out", nn.Linear(width, self.num_classes, dtype=dtype, seed=ss[-1])))

    def forward(self, x, *, lengths=None, training=False):
        if hasattr(x, "toarray"):  # scipy.sparse rows: densified per batch, then to the model's device
            x = x.toarray()
            if self._backend() is not None:
                x = self._backend().to_device(x)
        x = _device.array_module(x).asarray(x, dtype=self.dtype)
        for layer in self._layers:
            x = layer.forward(x, training=training) if isinstance(layer, nn.Dropout) else layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self._layers):
            grad = layer.backward(grad)
        return grad


# ---------------------------------------------------------------------- LM data helpers
def char_vocabulary(text: str):
    """A character-level ``rnnkit.text.Vocabulary`` of ``text`` (every character a token,
    newlines and punctuation included; <pad>=0, <unk>=1)."""
    from ..text import Vocabulary

    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty str")
    return Vocabulary([list(text)])


def lm_windows(ids, seq_len: int, stride: int | None = None):
    """Cuts a long id stream into training windows: ``X[i] = ids[s:s+seq_len]``,
    ``Y[i] = ids[s+1:s+seq_len+1]`` for s = 0, stride, 2*stride, ... (stride defaults to
    seq_len). Returns ``(X, Y)`` int64 (N, seq_len)."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    seq_len = check_positive_int(seq_len, "seq_len")
    stride = seq_len if stride is None else int(stride)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if ids.size < seq_len + 1:
        raise ValueError(f"need at least seq_len + 1 = {seq_len + 1} ids, got {ids.size}")
    starts = np.arange(0, ids.size - seq_len, stride)
    idx = starts[:, None] + np.arange(seq_len)[None, :]
    return ids[idx], ids[idx + 1]


def unigram_perplexity(train_ids, eval_ids, vocab_size: int, smoothing: float = 1.0) -> float:
    """Perplexity on ``eval_ids`` of the unigram model fitted to ``train_ids`` (add-``smoothing``
    counts over the vocabulary, padding excluded): the baseline a language model must beat."""
    counts = np.bincount(np.asarray(train_ids).ravel(), minlength=vocab_size).astype(np.float64)
    counts[0] = 0
    counts[1:] += smoothing
    logp = np.log(counts[1:] / counts[1:].sum())
    ev = np.asarray(eval_ids).ravel()
    return float(np.exp(-logp[ev - 1].mean()))
