"""``VectorToSequence``: one input vector generates a token sequence (one-to-many).

The vector x (image features, a class one-hot or embedding, a bag-of-words row) conditions a
recurrent decoder in two ways (``condition=``): ``"state"`` sets every layer's initial hidden
state to tanh(x @ W_init + b_init) (LSTM cells start at zero), ``"input"`` concatenates the
context x @ W_ctx + b_ctx to the embedding of the previous token at every step, ``"both"``
(default) does both. So y_t depends on (h_{t-1}, y_{t-1}, x).

Training uses teacher forcing: the decoder input at step t is the true y_{t-1} (<bos> at t=0),
so a whole batch of target sequences runs through the fused recurrent kernel in one call, and
the explicit backward returns the gradient with respect to x. Generation runs one step at a
time (T=1 calls carrying the recurrent state): greedy, sampling (temperature, top-k) or beam
search, until <eos> or ``max_len`` tokens.
"""
from __future__ import annotations

import numpy as np

from .. import nn
from .._runtime import govern_blas
from .._checks import check_ids, lengths_array
from ..nn.module import check_positive_int, float_input
from ..train.data import DataLayout
from ..train.losses import cross_entropy
from ._decoding import beam_search, check_decoding, decode
from ..nn.recurrent import recurrent_layer

__all__ = ["VectorToSequence"]

CONDITIONS = ("state", "input", "both")


class VectorToSequence(nn.Module):
    """Vector -> token sequence: conditioning projections -> Embedding + recurrent decoder ->
    per-step Linear -> logits.

    Args:
        num_features: size F of the conditioning vector x.
        vocab_size: V, the number of output tokens (including padding, <bos>, <eos>).
        embedding_dim, hidden_size, num_layers, cell ("lstm", "gru", "rnn"), dropout.
        condition: "state", "input" or "both" (see the module docstring).
        context_size: width of the per-step context (default: embedding_dim).
        vocab: an optional ``rnnkit.text.Vocabulary`` built with ``bos=True, eos=True``; gives
            ``bos_id``/``eos_id`` and lets ``generate`` return text (tokens joined with " " for
            ``level="word"``, "" for ``"char"``). Its size must equal ``vocab_size``.
        bos_id, eos_id, pad_id: special ids when there is no vocab (defaults 2, 3, 0: the
            order of ``Vocabulary(..., bos=True, eos=True)``).

    forward(x (B, F), targets (B, T), *, lengths=None, training=False) -> logits (B, T, V):
    position t predicts targets[:, t] from targets[:, :t] and x (teacher forcing). ``lengths``
    counts the valid target steps (the <eos> included); logits past them are zero.
    backward(dlogits) -> dx (B, F). Parameters: ``embed.W``, ``init.{W,b}`` (state),
    ``ctx.{W,b}`` (input), ``rnn.l{k}.fwd.*``, ``fc.{W,b}``.

    ``rnnkit.train.Trainer`` trains it on ``(x, targets, lengths)`` (or a dict with those keys;
    ``data_layout``): ``targets`` is both the decoder's input and the target, the loss sees the
    steps t < lengths, and ``bucket=True`` groups batches by target length.
    """

    def host_only_reason(self):
        # its decoding / scaling code is NumPy; not ported to device arrays
        return "rnnkit.models.VectorToSequence runs on NumPy arrays only"

    data_layout = DataLayout(inputs=("x", "targets"), target="targets", lengths=("lengths",),
                             steps={"targets": "lengths"}, bucket_by="lengths")

    def __init__(self, num_features, vocab_size, *, embedding_dim=32, hidden_size=64, num_layers=1,
                 cell="lstm", condition="both", context_size=None, dropout=0.0, vocab=None, level="word",
                 bos_id=2, eos_id=3, pad_id=0, dtype=np.float32, seed=None):
        super().__init__(seed)
        self.num_features = check_positive_int(num_features, "num_features")
        self.vocab_size = check_positive_int(vocab_size, "vocab_size", 2)
        if condition not in CONDITIONS:
            raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
        if level not in ("char", "word"):
            raise ValueError(f"level must be 'char' or 'word', got {level!r}")
        if vocab is not None:
            if len(vocab) != self.vocab_size:
                raise ValueError(f"vocab has {len(vocab)} tokens but vocab_size is {vocab_size} "
                                 f"(vocabulary mismatch)")
            if vocab.bos_id is None or vocab.eos_id is None:
                raise ValueError("vocab needs <bos> and <eos>: build it with Vocabulary(..., bos=True, eos=True)")
            bos_id, eos_id, pad_id = vocab.bos_id, vocab.eos_id, vocab.pad_id
        for name, v in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < self.vocab_size:
                raise ValueError(f"{name} must be an id in [0, vocab_size={self.vocab_size}), got {v!r}")
        if len({int(bos_id), int(eos_id), int(pad_id)}) != 3:
            raise ValueError(f"bos_id, eos_id and pad_id must differ, got {bos_id}, {eos_id}, {pad_id}")
        self.bos_id, self.eos_id, self.pad_id = int(bos_id), int(eos_id), int(pad_id)
        self.vocab, self.level, self.condition, self.cell = vocab, level, condition, cell
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_layers = check_positive_int(num_layers, "num_layers")
        self.embedding_dim = check_positive_int(embedding_dim, "embedding_dim")
        self.context_size = self.embedding_dim if context_size is None else check_positive_int(
            context_size, "context_size")
        self.dtype = np.dtype(dtype)
        ss = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(6)]
        self.embed = nn.Embedding(self.vocab_size, self.embedding_dim, padding_idx=self.pad_id, dtype=dtype,
                                  seed=ss[0])
        in_size = self.embedding_dim
        if condition in ("state", "both"):
            self.init = nn.Linear(self.num_features, self.num_layers * self.hidden_size, dtype=dtype, seed=ss[1])
        if condition in ("input", "both"):
            self.ctx = nn.Linear(self.num_features, self.context_size, dtype=dtype, seed=ss[2])
            in_size += self.context_size
        self.rnn = recurrent_layer(cell)(in_size, self.hidden_size, self.num_layers, dropout=dropout, batch_first=False,
                                     return_state=True, dtype=dtype, seed=ss[3])
        self.drop = nn.Dropout(dropout, seed=ss[4])
        self.fc = nn.Linear(self.hidden_size, self.vocab_size, batch_first=False, dtype=dtype, seed=ss[5])
        self._cache = None

    # ------------------------------------------------------------------ pieces
    def _check_x(self, x):
        x = float_input(x, "x", self.dtype, ndims=(2,), last=self.num_features,
                        meaning=" (B, num_features)")
        if x.shape[0] == 0:
            raise ValueError("x is empty (B = 0); give at least one conditioning vector")
        if not np.all(np.isfinite(x)):
            raise ValueError("x contains NaN or inf")
        return x

    def _condition(self, x):
        """Initial states (or None) and the per-step context (or None) for a batch x."""
        init = ctx = h0 = None
        if "init" in self._children:
            H = self.hidden_size
            h0 = np.tanh(self.init.forward(x))
            hs = [np.ascontiguousarray(h0[:, k * H:(k + 1) * H]) for k in range(self.num_layers)]
            init = [(h, None) for h in hs] if self.rnn.cell_type.has_cell_state else hs
        if "ctx" in self._children:
            ctx = self.ctx.forward(x)
        return init, ctx, h0

    def _step_input(self, ids_tm, ctx):
        e = self.embed.forward(ids_tm)  # (T, B, E)
        if ctx is None:
            return e
        return np.concatenate([e, np.broadcast_to(ctx, (e.shape[0],) + ctx.shape)], axis=-1)

    # ------------------------------------------------------------------ training
    def forward(self, x, targets=None, *, lengths=None, training=False):
        if targets is None:
            raise TypeError("forward needs targets (B, T) for teacher forcing; use generate() to decode")
        x = self._check_x(x)
        t = check_ids(targets, self.vocab_size, "targets", batch_first=True, vocabulary="vocab_size")
        B, T = t.shape
        if B != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but targets has {B}; they must match")
        dec_in = np.concatenate([np.full((B, 1), self.bos_id, np.int64), t[:, :-1]], axis=1)
        init, ctx, h0 = self._condition(x)
        inp = self._step_input(np.ascontiguousarray(dec_in.T), ctx)
        y, _ = self.rnn.forward(inp, lengths=lengths, training=training, initial_state=init)
        logits = self.fc.forward(self.drop.forward(y, training=training), lengths=lengths)
        self._cache = dict(h0=h0, has_ctx=ctx is not None)
        return logits.transpose(1, 0, 2)

    def backward(self, grad):
        c = self._cache
        if c is None:
            raise RuntimeError("VectorToSequence.backward called before forward")
        dy = self.drop.backward(self.fc.backward(np.asarray(grad).transpose(1, 0, 2)))
        dinp = self.rnn.backward((np.ascontiguousarray(dy), None))
        E = self.embedding_dim
        self.embed.backward(np.ascontiguousarray(dinp[..., :E]))
        dx = None
        if c["has_ctx"]:
            dx = self.ctx.backward(dinp[..., E:].sum(axis=0))
        if c["h0"] is not None:
            dinit = self.rnn.dinitial_state
            dh = [d[0] if isinstance(d, tuple) else d for d in dinit]
            dh = np.concatenate([np.zeros_like(c["h0"][:, :self.hidden_size]) if d is None else d for d in dh],
                                axis=1)
            d = self.init.backward((dh * (1.0 - c["h0"] ** 2)).astype(self.dtype))
            dx = d if dx is None else dx + d
        return dx

    def loss(self, x, targets, lengths=None, *, training=False, backward=False):
        """Mean per-token cross-entropy of ``targets`` given x (padding past ``lengths``
        excluded); with ``backward=True`` the gradients are accumulated too. Returns
        (loss, number of tokens)."""
        logits = self.forward(x, targets, lengths=lengths, training=training)
        T = logits.shape[1]
        mask = None if lengths is None else np.arange(T)[None, :] < np.asarray(lengths)[:, None]
        value, grad, count = cross_entropy(logits, targets, mask=mask)
        if backward:
            self.backward(grad)
        return value, count

    def prepare_targets(self, sequences, max_len=None):
        """Token sequences (lists of tokens with ``vocab``, or lists of ids) -> padded ids
        (N, T) with <eos> appended, and lengths (N,) (the <eos> counted). Longer sequences
        are cut to ``max_len`` - 1 tokens + <eos>."""
        seqs = list(sequences)
        if not seqs:
            raise ValueError("sequences is empty")
        out = []
        for k, s in enumerate(seqs):
            s = list(s)
            if s and isinstance(s[0], str):
                if self.vocab is None:
                    raise ValueError("token strings need the model's vocab (VectorToSequence(..., vocab=))")
                s = self.vocab.encode(s, add_bos=False, add_eos=False)
            ids = [int(i) for i in s]
            if max_len is not None:
                ids = ids[:max(int(max_len) - 1, 0)]
            bad = [i for i in ids if not 0 <= i < self.vocab_size]
            if bad:
                raise IndexError(f"sequences[{k}] has id {bad[0]}, out of range for vocab_size {self.vocab_size}")
            out.append(ids + [self.eos_id])
        T = max(len(s) for s in out)
        ids = np.full((len(out), T), self.pad_id, np.int64)
        for k, s in enumerate(out):
            ids[k, :len(s)] = s
        return ids, np.array([len(s) for s in out], np.int64)

    @govern_blas()
    def fit(self, x, targets, lengths=None, *, epochs=10, batch_size=32, lr=3e-3, optimizer="adam",
            clip_norm=5.0, seed=0, verbose=False):
        """Teacher-forced training through ``rnnkit.train.Trainer`` with an ``rnnkit.train``
        optimiser: shuffled mini-batches (not grouped by length; ``seed`` drives the
        shuffling), gradient clipping (0/None: none). ``verbose`` shows the Trainer's progress
        bar. Returns the list of per-epoch mean token losses."""
        from ..train.trainer import Trainer

        x = self._check_x(x)
        t = check_ids(targets, self.vocab_size, "targets", batch_first=True, vocabulary="vocab_size")
        if t.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but targets has {t.shape[0]}; they must match")
        lengths = lengths_array(lengths, t.shape[0], t.shape[1], minimum=1)  # every target has its <eos>
        epochs = check_positive_int(epochs, "epochs")
        batch_size = check_positive_int(batch_size, "batch_size")
        trainer = Trainer(self, loss="cross_entropy", optimizer=optimizer, lr=lr, clip_norm=clip_norm or None,
                          seed=seed, quiet=not verbose)
        # plain shuffled batches, as fit always trained: the same seed gives the same model
        history = trainer.fit((x, t, lengths), epochs=epochs, batch_size=batch_size, bucket=False)
        return list(history["loss"])

    # ------------------------------------------------------------------ generation
    def _step(self, tokens, state):
        """The decoding step: state = (recurrent state, per-step context or None), both by row.
        Padding and <bos> get logit -inf: generation scores (beam search) and samples from the
        distribution over the tokens it may produce."""
        rnn_state, ctx = state
        inp = self._step_input(np.asarray(tokens, np.int64)[None, :], ctx)
        y, rnn_state = self.rnn.forward(inp, initial_state=rnn_state)
        logits = self.fc.forward(y)[0].astype(np.float64)
        logits[:, [self.pad_id, self.bos_id]] = -np.inf
        return logits, (rnn_state, ctx)

    @govern_blas()
    def generate(self, x, *, max_len=20, method="greedy", temperature=1.0, top_k=None, beam_width=4,
                 length_penalty=0.0, seed=None):
        """Decodes one sequence per row of x ((B, F), or (F,) for a single vector).

        method: "greedy" (argmax), "sample" (from softmax(logits / temperature), restricted to
        the ``top_k`` most likely tokens when given; ``seed`` makes it reproducible) or "beam"
        (``beam_width`` hypotheses, score log p / len**length_penalty). Padding and <bos> are
        never produced; decoding stops at <eos> (not returned) or after ``max_len`` tokens.
        Returns a list of id lists, or of strings when the model has a vocab; a single one for
        a 1-D x.
        """
        check_decoding(method, temperature, top_k, beam_width, max_len, length_penalty)
        x = np.asarray(x)
        single = x.ndim == 1
        x = self._check_x(x[None, :] if single else x)
        init, ctx, _ = self._condition(x)
        logits, state = self._step(np.full(x.shape[0], self.bos_id, np.int64), (init, ctx))
        if method == "beam":
            outs, _ = beam_search(self._step, logits, state, eos_id=self.eos_id, beam_width=beam_width,
                                  max_len=max_len, length_penalty=length_penalty)
        else:
            outs, _ = decode(self._step, logits, state, max_len=max_len, eos_id=self.eos_id,
                             greedy=method == "greedy", temperature=temperature, top_k=top_k,
                             rng=np.random.default_rng(seed))
        if self.vocab is not None:
            sep = "" if self.level == "char" else " "
            outs = [sep.join(self.vocab.id_to_token(i) for i in o) for o in outs]
        return outs[0] if single else outs
