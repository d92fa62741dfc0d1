"""Sequence to sequence (encoder-decoder) with optional Luong-style attention: ``Seq2Seq``.

Token ids are batch-first ``(B, S)`` / ``(B, T)``, padded with ``pad_id``; internally everything
recurrent is time-major and runs on the fused kernels of the ``rnnkit.nn`` layers.

Model (documented in docs/seq2seq.md)::

    encoder:  Embedding(src) -> RNN/LSTM/GRU stack (optionally bidirectional), src_lengths honoured
    bridge:   per layer l, the encoder's final states of both directions combined ("concat" or
              "sum"), then h0_l = tanh(Linear_h,l(.)) and, for LSTM, c0_l = Linear_c,l(.)
    context:  ctx = h0 of the top decoder layer (B, Hd), fed to the decoder at every step
    decoder:  x_t = [Embedding(y_{t-1}); ctx] (y_{-1} = bos_id) -> unidirectional stack started
              from the bridged states (h0_l, c0_l) -> dropout
    attention (optional, Luong et al. 2015 "global" attention, no input feeding): scores between
              each decoder output h_t and the encoder outputs e_s ("dot": h_t . (e_s Wk),
              Luong's "general"; "additive": v . tanh(h_t Wq + e_s Wk + b), Luong's "concat" /
              Bahdanau's score), softmax over the valid source steps only, c_t = sum_s a_ts e_s,
              attentional state h~_t = tanh([c_t; h_t] Wc + bc)
    output:   logits_t = Linear(h~_t or h_t) (B, T, tgt_vocab_size)

Because the attention is applied to the decoder's outputs (no input feeding), with teacher forcing
every decoder input is known before the decoder runs, so the whole target sequence is one fused
kernel call forward and one backward. ``teacher_forcing < 1`` (scheduled sampling) first runs a
step-by-step greedy pass without gradients (T=1 kernel calls carrying the state; slower) that
chooses each step's input - the gold previous token with probability ``teacher_forcing``, else the
model's own prediction - and then the fused pass on those inputs, which reproduces that pass's
states exactly (dropout aside: the choosing pass runs without dropout).
"""
from __future__ import annotations

import numpy as np

from .. import nn
from .._runtime import govern_blas
from ..nn.layers import glorot_uniform
from ..nn.recurrent import recurrent_layer
from .._checks import check_ids, check_positive_int, lengths_array, shape_str
from ..train.data import DataLayout
from ..train.losses import cross_entropy, log_softmax
from ._decoding import beam_search, check_beam, choose_next, decode

__all__ = ["Seq2Seq", "LuongAttention"]

ATTENTIONS = (None, "dot", "additive")
BRIDGES = ("concat", "sum")


def _lengths(lengths, name, B, T):
    """Checked lengths; None means every sequence fills all T steps."""
    arr = lengths_array(lengths, B, T, name)
    return np.full(B, T, np.int64) if arr is None else arr


class LuongAttention(nn.Module):
    """Luong-style global attention over encoder outputs, applied to decoder outputs.

    forward(dec (B, T, H), enc (B, S, De), mask (B, S) bool valid source steps) -> h~ (B, T, H)
    with h~_t = tanh([c_t; h_t] Wc + bc), c_t = softmax_s(score(h_t, e_s)) @ e. ``score="dot"``:
    h_t . (e_s Wk) (Wk (De, H); Luong's "general"); ``"additive"``: v . tanh(h_t Wq + e_s Wk + b)
    (Wq (H, A), Wk (De, A), v (A,)). Masked source steps get zero weight and no gradient. The
    weights of the last forward are kept in ``last_weights`` (B, T, S).
    """

    def host_only_reason(self):
        # its decoding / scaling code is NumPy; not ported to device arrays
        return "rnnkit.models.LuongAttention runs on NumPy arrays only"

    def __init__(self, query_size, key_size, *, score="dot", attention_size=None, dtype=np.float32,
                 seed=None):
        super().__init__(seed)
        if score not in ("dot", "additive"):
            raise ValueError(f"score must be 'dot' or 'additive', got {score!r}")
        self.score, self.dtype = score, np.dtype(dtype)
        H, De = int(query_size), int(key_size)
        self.query_size, self.key_size = H, De
        rng = np.random.default_rng(seed)
        if score == "dot":
            self.add_parameter("Wk", glorot_uniform(rng, De, H, self.dtype))
        else:
            A = H if attention_size is None else check_positive_int(attention_size, "attention_size", 1)
            self.add_parameter("Wq", glorot_uniform(rng, H, A, self.dtype))
            self.add_parameter("Wk", glorot_uniform(rng, De, A, self.dtype))
            self.add_parameter("b", np.zeros(A, self.dtype))
            self.add_parameter("v", glorot_uniform(rng, A, 1, self.dtype)[:, 0].copy())
        self.add_parameter("Wc", glorot_uniform(rng, De + H, H, self.dtype))
        self.add_parameter("bc", np.zeros(H, self.dtype))
        self._cache = None
        self.last_weights = None

    def keys(self, enc):
        """The projected encoder outputs (B, S, H or A): computed once per source for decoding."""
        return enc @ self.Wk

    def forward(self, dec, enc, mask, keys=None):
        if keys is None:
            keys = self.keys(enc)
        if self.score == "dot":
            scores = dec @ keys.transpose(0, 2, 1)                       # (B, T, S)
            th = q = None
        else:
            q = dec @ self.Wq                                            # (B, T, A)
            th = np.tanh(q[:, :, None, :] + keys[:, None, :, :] + self.b)  # (B, T, S, A)
            scores = th @ self.v
        scores = np.where(mask[:, None, :], scores, -np.inf)
        scores -= scores.max(axis=-1, keepdims=True)
        a = np.exp(scores)
        a /= a.sum(axis=-1, keepdims=True)
        ctx = a @ enc                                                    # (B, T, De)
        hcat = np.concatenate([ctx, dec], axis=-1)
        out = np.tanh(hcat @ self.Wc + self.bc)
        self._cache = (dec, enc, keys, a, hcat, out, th)
        self.last_weights = a
        return out

    def backward(self, dout):
        """dout (B, T, H) -> (ddec (B, T, H), denc (B, S, De)); accumulates parameter gradients."""
        dec, enc, keys, a, hcat, out, th = self._cache
        g, De, H = self._grads, self.key_size, self.query_size
        dpre = dout * (1.0 - out * out)
        g["Wc"] += hcat.reshape(-1, De + H).T @ dpre.reshape(-1, H)
        g["bc"] += dpre.sum(axis=(0, 1))
        dhcat = dpre @ self.Wc.T
        dctx, ddec = dhcat[..., :De], dhcat[..., De:].copy()
        da = dctx @ enc.transpose(0, 2, 1)                               # (B, T, S)
        denc = a.transpose(0, 2, 1) @ dctx                               # (B, S, De)
        ds = a * (da - (da * a).sum(axis=-1, keepdims=True))
        if self.score == "dot":
            ddec += ds @ keys
            dkeys = ds.transpose(0, 2, 1) @ dec                          # (B, S, H)
        else:
            A = th.shape[-1]
            g["v"] += np.einsum("btsa,bts->a", th, ds)
            dz = ds[..., None] * self.v * (1.0 - th * th)                # (B, T, S, A)
            dq = dz.sum(axis=2)
            dkeys = dz.sum(axis=1)
            g["b"] += dz.sum(axis=(0, 1, 2))
            g["Wq"] += dec.reshape(-1, H).T @ dq.reshape(-1, A)
            ddec += dq @ self.Wq.T
        g["Wk"] += enc.reshape(-1, De).T @ dkeys.reshape(-1, dkeys.shape[-1])
        denc += dkeys @ self.Wk.T
        return ddec, denc


class Seq2Seq(nn.Module):
    """Encoder-decoder for token sequences, with optional Luong-style attention.

    Seq2Seq(src_vocab_size, tgt_vocab_size, *, bos_id, eos_id, pad_id=0, embedding_dim=32,
    hidden_size=64, decoder_hidden_size=None, num_layers=1, cell="lstm", bidirectional=True,
    bridge="concat", attention=None, attention_size=None, dropout=0.0, teacher_forcing=1.0,
    src_vocab=None, tgt_vocab=None, dtype=np.float32, seed=None)

    ``bos_id`` starts every decoder input, ``eos_id`` ends targets and hypotheses, ``pad_id``
    pads (bos/pad are never produced by decoding). ``cell`` is used by encoder and decoder, both
    with ``num_layers`` layers; ``bridge`` combines the two directions' final states ("concat" or
    "sum") before the learned projection to the decoder's size. ``attention``: None, "dot" or
    "additive". ``teacher_forcing`` (settable attribute): probability of feeding the gold previous
    token in training (1: fused fast path; < 1: scheduled sampling, see the module docstring).

    forward(src (B, S), tgt (B, T), *, src_lengths=None, tgt_lengths=None, training=False)
    -> logits (B, T, tgt_vocab_size): ``tgt`` is the target without bos and ending with eos;
    position t predicts tgt[:, t] from src and tgt[:, :t]. Logits at padded target steps are 0.
    backward(dlogits) accumulates every parameter's gradient and returns None.
    ``forward_backward`` = forward + masked cross-entropy + backward; ``fit`` trains with Adam;
    ``log_prob`` scores given targets; ``greedy_decode`` / ``beam_search`` / ``predict`` decode.

    ``rnnkit.train.Trainer`` trains it on ``(src, tgt, src_lengths, tgt_lengths)`` (or a dict
    with those keys; ``data_layout``): ``tgt`` is both the decoder's input and the target, the
    loss sees the steps t < tgt_lengths, and batches are grouped by source length.
    """

    def host_only_reason(self):
        # its decoding / scaling code is NumPy; not ported to device arrays
        return "rnnkit.models.Seq2Seq runs on NumPy arrays only"

    # grouped by source length, as fit always did: the encoder's steps are the padding that the
    # bidirectional encoder pays for twice
    data_layout = DataLayout(inputs=("src", "tgt"), target="tgt", lengths=("src_lengths", "tgt_lengths"),
                             steps={"src": "src_lengths", "tgt": "tgt_lengths"}, bucket_by="src_lengths")

    def __init__(self, src_vocab_size, tgt_vocab_size, *, bos_id, eos_id, pad_id=0, embedding_dim=32,
                 hidden_size=64, decoder_hidden_size=None, num_layers=1, cell="lstm", bidirectional=True,
                 bridge="concat", attention=None, attention_size=None, dropout=0.0, teacher_forcing=1.0,
                 src_vocab=None, tgt_vocab=None, dtype=np.float32, seed=None):
        super().__init__(seed)
        self.src_vocab_size = check_positive_int(src_vocab_size, "src_vocab_size", 2)
        self.tgt_vocab_size = check_positive_int(tgt_vocab_size, "tgt_vocab_size", 2)
        for v, n, name in ((src_vocab, self.src_vocab_size, "src"), (tgt_vocab, self.tgt_vocab_size, "tgt")):
            if v is not None and len(v) != n:
                raise ValueError(f"{name}_vocab has {len(v)} tokens but {name}_vocab_size is {n}")
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        V = self.tgt_vocab_size
        ids = {}
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < V:
                raise ValueError(f"{name} must be a target id in [0, tgt_vocab_size={V}), got {value!r}")
            ids[name] = int(value)
        if len(set(ids.values())) != 3:
            raise ValueError(f"bos_id, eos_id and pad_id must be distinct, got {ids}")
        self.bos_id, self.eos_id, self.pad_id = ids["bos_id"], ids["eos_id"], ids["pad_id"]
        layer_class = recurrent_layer(cell)
        if bridge not in BRIDGES:
            raise ValueError(f"bridge must be one of {BRIDGES}, got {bridge!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        self.cell, self.bridge, self.attention = cell, bridge, attention
        self.bidirectional = bool(bidirectional)
        E = check_positive_int(embedding_dim, "embedding_dim", 1)
        He = check_positive_int(hidden_size, "hidden_size", 1)
        Hd = He if decoder_hidden_size is None else check_positive_int(decoder_hidden_size, "decoder_hidden_size", 1)
        L = check_positive_int(num_layers, "num_layers", 1)
        self.embedding_dim, self.hidden_size, self.decoder_hidden_size, self.num_layers = E, He, Hd, L
        self.teacher_forcing = teacher_forcing
        self._check_tf()
        self.dtype = np.dtype(dtype)
        D = 2 if self.bidirectional else 1
        self.num_directions = D
        ss = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(8 + 2 * L)]
        self.src_embed = nn.Embedding(self.src_vocab_size, E, padding_idx=self.pad_id, dtype=dtype, seed=ss[0])
        self.encoder = layer_class(E, He, L, bidirectional=self.bidirectional, dropout=dropout, batch_first=False,
                                    return_state=True, dtype=dtype, seed=ss[1])
        self.tgt_embed = nn.Embedding(V, E, padding_idx=self.pad_id, dtype=dtype, seed=ss[2])
        self.decoder = layer_class(E + Hd, Hd, L, dropout=dropout, return_state=True, batch_first=False, dtype=dtype,
                                    seed=ss[3])
        comb = D * He if bridge == "concat" else He
        self._bridges = []
        for l in range(L):
            bh = self.add_module(f"bridge_h{l}", nn.Linear(comb, Hd, dtype=dtype, seed=ss[8 + 2 * l]))
            bc = None
            if self.encoder.cell_type.has_cell_state:  # the c states get their own bridge
                bc = self.add_module(f"bridge_c{l}", nn.Linear(comb, Hd, dtype=dtype, seed=ss[9 + 2 * l]))
            self._bridges.append((bh, bc))
        self.drop = nn.Dropout(dropout, seed=ss[4])
        self.enc_output_size = self.encoder.output_size
        if attention is not None:
            self.attn = LuongAttention(Hd, self.enc_output_size, score=attention,
                                       attention_size=attention_size, dtype=dtype, seed=ss[5])
        self.fc = nn.Linear(Hd, V, batch_first=True, dtype=dtype, seed=ss[6])
        self._cache = None
        self._h0 = None

    def extra_repr(self):
        return (f"src_vocab_size={self.src_vocab_size}, tgt_vocab_size={self.tgt_vocab_size}, "
                f"cell={self.cell!r}, bidirectional={self.bidirectional}, attention={self.attention!r}")

    def _check_tf(self):
        tf = self.teacher_forcing
        if isinstance(tf, bool) or not isinstance(tf, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(tf) <= 1.0:
            raise ValueError(f"teacher_forcing must be a probability in [0, 1], got {tf!r}")
        return float(tf)

    # ------------------------------------------------------------------ encoder + bridge
    def _check_src(self, src, src_lengths):
        arr = np.asarray(src)
        if arr.ndim == 2 and (arr.shape[0] == 0 or arr.shape[1] == 0):
            raise ValueError(f"src is empty (shape {shape_str(arr.shape)}): give at least one sequence "
                             f"of at least one token")
        if arr.ndim != 2:
            raise ValueError(f"src must be 2-D (B, S) batch-first token ids, got shape {shape_str(arr.shape)}")
        B, S = arr.shape
        lengths = _lengths(src_lengths, "src_lengths", B, S)
        if (lengths == 0).any():
            i = int(np.flatnonzero(lengths == 0)[0])
            raise ValueError(f"src_lengths[{i}] = 0: source sequence {i} is empty; every source needs "
                             f"at least one token")
        ids = check_ids(arr, self.src_vocab_size, "src", batch_first=True, vocabulary="src_vocab_size",
                        lengths=lengths, pad_id=self.pad_id)
        return ids, lengths

    def _encode(self, src, src_lengths, training):
        """-> (enc (B, S, De) batch-first, mask (B, S), decoder initial states, ctx (B, Hd))."""
        ids, lengths = self._check_src(src, src_lengths)
        x = self.src_embed.forward(np.ascontiguousarray(ids.T))
        y, states = self.encoder.forward(x, lengths=lengths, training=training)
        enc = np.ascontiguousarray(y.transpose(1, 0, 2))
        mask = np.arange(ids.shape[1])[None, :] < lengths[:, None]
        D = self.num_directions
        init, hs = [], []
        for l, (bh, bc) in enumerate(self._bridges):
            per = states[l * D:(l + 1) * D]
            if self.encoder.cell_type.has_cell_state:
                h_parts, c_parts = [s[0] for s in per], [s[1] for s in per]
            else:
                h_parts, c_parts = per, None
            h0 = np.tanh(bh.forward(self._combine(h_parts)))
            hs.append(h0)
            if self.encoder.cell_type.has_cell_state:
                init.append((h0, np.ascontiguousarray(bc.forward(self._combine(c_parts)))))
            else:
                init.append(h0)
        self._h0 = hs
        return enc, mask, lengths, init, hs[-1]

    def _combine(self, parts):
        if len(parts) == 1:
            return parts[0]
        if self.bridge == "concat":
            return np.concatenate(parts, axis=-1)
        return parts[0] + parts[1]

    def _split(self, d):
        D = self.num_directions
        if D == 1:
            return [d]
        if self.bridge == "concat":
            He = self.hidden_size
            return [np.ascontiguousarray(d[:, :He]), np.ascontiguousarray(d[:, He:])]
        return [d, d.copy()]

    # ------------------------------------------------------------------ decoder
    def _decoder_inputs(self, tokens_tm, ctx):
        """tokens (T, B) -> (T, B, E + Hd) = [embedding; context] at every step."""
        emb = self.tgt_embed.forward(tokens_tm)
        T = tokens_tm.shape[0]
        return np.ascontiguousarray(np.concatenate([emb, np.broadcast_to(ctx, (T,) + ctx.shape)], axis=-1))

    def _head(self, dec_tm, enc, mask, keys=None, lengths=None, training=False):
        """Decoder outputs (T, B, Hd) -> logits (B, T, V)."""
        h = self.drop.forward(np.ascontiguousarray(dec_tm.transpose(1, 0, 2)), training=training)
        if self.attention is not None:
            h = self.attn.forward(h, enc, mask, keys)
        return self.fc.forward(h, lengths=lengths)

    def _step(self, tokens, state):
        """One decoding step for N hypotheses: tokens (N,) -> (logits (N, V) float64, new state).
        ``state`` is a dict of the per-hypothesis arrays (states, ctx, enc, mask, keys)."""
        x = self._decoder_inputs(np.asarray(tokens, np.int64)[None, :], state["ctx"])
        y, states = self.decoder.forward(x, initial_state=state["states"])
        logits = self._head(y, state["enc"], state["mask"], state["keys"])[:, 0, :]
        new = dict(state)
        new["states"] = states
        return logits.astype(np.float64), new

    def _start(self, src, src_lengths):
        """Encodes ``src`` and runs the first decoder step (on bos): -> (logits, state)."""
        enc, mask, lengths, init, ctx = self._encode(src, src_lengths, False)
        keys = self.attn.keys(enc) if self.attention is not None else None
        state = dict(states=init, ctx=ctx, enc=enc, mask=mask, keys=keys)
        return self._step(np.full(enc.shape[0], self.bos_id, np.int64), state)

    # ------------------------------------------------------------------ training
    def _check_tgt(self, tgt, tgt_lengths, B):
        arr = np.asarray(tgt)
        if arr.ndim != 2:
            raise ValueError(f"tgt must be 2-D (B, T) batch-first token ids, got shape {shape_str(arr.shape)}")
        if arr.shape[0] != B:
            raise ValueError(f"tgt has {arr.shape[0]} sequences but src has {B}")
        if arr.shape[1] == 0:
            raise ValueError("tgt is empty (T = 0): targets need at least the eos token")
        lengths = _lengths(tgt_lengths, "tgt_lengths", B, arr.shape[1])
        ids = check_ids(arr, self.tgt_vocab_size, "tgt", batch_first=True, vocabulary="tgt_vocab_size",
                        lengths=lengths, pad_id=self.pad_id)
        return ids, lengths

    def forward(self, src, tgt, *, src_lengths=None, tgt_lengths=None, training=False):
        tf = self._check_tf()
        B = self._check_src(src, src_lengths)[0].shape[0]
        tgt_ids, tl = self._check_tgt(tgt, tgt_lengths, B)
        B, T = tgt_ids.shape
        enc, mask, sl, init, ctx = self._encode(src, src_lengths, training)
        gold_in = np.concatenate([np.full((B, 1), self.bos_id, np.int64), tgt_ids[:, :-1]], axis=1)
        if training and tf < 1.0:
            dec_in = self._scheduled_inputs(gold_in, tf, enc, mask, init, ctx)
        else:
            dec_in = gold_in
        dec_in = np.where(np.arange(T)[None, :] < tl[:, None], dec_in, self.pad_id)
        x = self._decoder_inputs(np.ascontiguousarray(dec_in.T), ctx)
        y, _ = self.decoder.forward(x, lengths=tl, training=training, initial_state=init)
        logits = self._head(y, enc, mask, lengths=tl, training=training)
        self._cache = dict(B=B, T=T, S=enc.shape[1], tl=tl)
        return logits

    def _scheduled_inputs(self, gold_in, tf, enc, mask, init, ctx):
        """Scheduled sampling: step by step (no gradient), input t is gold_in[:, t] with
        probability tf, else the model's argmax at step t - 1."""
        B, T = gold_in.shape
        keys = self.attn.keys(enc) if self.attention is not None else None
        state = dict(states=init, ctx=ctx, enc=enc, mask=mask, keys=keys)
        out = gold_in.copy()
        use_gold = self._rng.random((B, T)) < tf
        use_gold[:, 0] = True
        tok = out[:, 0]
        for t in range(T - 1):
            logits, state = self._step(tok, state)
            pred = choose_next(logits, greedy=True, banned=self._never_decoded)
            tok = np.where(use_gold[:, t + 1], gold_in[:, t + 1], pred)
            out[:, t + 1] = tok
        return out

    def backward(self, grad):
        c = self._cache
        if c is None:
            raise RuntimeError("Seq2Seq.backward called before forward")
        grad = np.asarray(grad)
        want = (c["B"], c["T"], self.tgt_vocab_size)
        if grad.shape != want:
            raise ValueError(f"grad must have the logits' shape {shape_str(want)}, got {shape_str(grad.shape)}")
        dh = self.fc.backward(grad.astype(self.dtype, copy=False))
        denc = None
        if self.attention is not None:
            dh, denc = self.attn.backward(dh)
        dh = self.drop.backward(dh)
        dx = self.decoder.backward((np.ascontiguousarray(dh.transpose(1, 0, 2)), None))
        E = self.embedding_dim
        valid = (np.arange(c["T"])[:, None] < c["tl"][None, :])[:, :, None]
        self.tgt_embed.backward(np.ascontiguousarray(dx[..., :E]))
        dctx = (dx[..., E:] * valid).sum(axis=0)
        dinit = self.decoder.dinitial_state
        D, L = self.num_directions, self.num_layers
        dstates = [None] * (D * L)
        for l, (bh, bc) in enumerate(self._bridges):
            if self.encoder.cell_type.has_cell_state:
                dh0, dc0 = dinit[l]
            else:
                dh0, dc0 = dinit[l], None
            if l == L - 1:
                dh0 = dh0 + dctx
            h0 = self._h0[l]
            dh_parts = self._split(bh.backward(dh0 * (1.0 - h0 * h0)))
            if self.encoder.cell_type.has_cell_state:
                dc_parts = self._split(bc.backward(dc0))
                for d in range(D):
                    dstates[l * D + d] = (dh_parts[d], dc_parts[d])
            else:
                for d in range(D):
                    dstates[l * D + d] = dh_parts[d]
        dy = None if denc is None else np.ascontiguousarray(denc.transpose(1, 0, 2))
        dxe = self.encoder.backward((dy, dstates))
        self.src_embed.backward(dxe)
        return None

    def forward_backward(self, src, tgt, *, src_lengths=None, tgt_lengths=None, training=True,
                         label_smoothing=0.0):
        """forward + mean cross-entropy over the valid target steps + backward (gradients are
        accumulated: call ``zero_grad()`` first). Returns ``(loss, count)``."""
        logits = self.forward(src, tgt, src_lengths=src_lengths, tgt_lengths=tgt_lengths, training=training)
        tl = self._cache["tl"]
        valid = np.arange(logits.shape[1])[None, :] < tl[:, None]
        loss, grad, count = cross_entropy(logits, np.where(valid, np.asarray(tgt), 0), mask=valid,
                                          label_smoothing=label_smoothing)
        self.backward(grad)
        return loss, count

    def log_prob(self, src, tgt, *, src_lengths=None, tgt_lengths=None):
        """Sum of log p(tgt_t | src, tgt_<t) over each target's valid steps (eos included) (B,)."""
        logits = self.forward(src, tgt, src_lengths=src_lengths, tgt_lengths=tgt_lengths)
        tl = self._cache["tl"]
        logp = log_softmax(logits.astype(np.float64))
        t = np.asarray(tgt, np.int64)
        valid = np.arange(t.shape[1])[None, :] < tl[:, None]
        picked = np.take_along_axis(logp, np.where(valid, t, 0)[..., None], axis=-1)[..., 0]
        return (picked * valid).sum(axis=1)

    @govern_blas()
    def fit(self, src, tgt, *, src_lengths=None, tgt_lengths=None, epochs=10, batch_size=32, lr=3e-3,
            clip_norm=5.0, seed=0, verbose=False):
        """Trains with Adam through ``rnnkit.train.Trainer``: masked cross-entropy over the valid
        target steps, gradients clipped to ``clip_norm`` (0/None: no clipping), shuffled batches
        of similar source length (pools of 50 batches sorted by length; ``seed`` drives the
        shuffling). ``verbose`` shows the Trainer's progress bar. Returns the mean training loss
        of each epoch."""
        from ..train.trainer import Trainer

        src = np.asarray(src)
        tgt = np.asarray(tgt)
        if src.ndim != 2 or tgt.ndim != 2 or src.shape[0] != tgt.shape[0]:
            raise ValueError(f"src and tgt must be 2-D with the same number of rows, got "
                             f"{shape_str(src.shape)} and {shape_str(tgt.shape)}")
        N = src.shape[0]
        sl = _lengths(src_lengths, "src_lengths", N, src.shape[1])
        tl = _lengths(tgt_lengths, "tgt_lengths", N, tgt.shape[1])
        epochs = check_positive_int(epochs, "epochs", 1)
        batch_size = check_positive_int(batch_size, "batch_size", 1)
        trainer = Trainer(self, loss="cross_entropy", optimizer="adam", lr=lr, clip_norm=clip_norm or None,
                          seed=seed, quiet=not verbose, bucket_pool=50)
        history = trainer.fit((src, tgt, sl, tl), epochs=epochs, batch_size=batch_size)
        return list(history["loss"])

    def attention_weights(self, src, tgt=None, *, src_lengths=None, tgt_lengths=None, max_len=50):
        """Where the decoder looks: ``(targets, weights)``. ``weights`` (B, T, S) float64 holds,
        for every target step t of each row, the attention over the source steps (a row sums to
        1 over the valid source steps; padded source and target steps are 0). ``targets`` lists
        each row's target ids (eos included, padding not), the tokens the rows of ``weights``
        belong to.

        With ``tgt`` (as for ``forward``: without bos, ending with eos) the weights are those of
        the teacher-forced pass. Without it the model decodes greedily (``max_len``) and the
        weights are those it used while producing its own output (eos appended unless cut at
        ``max_len``). Only for models built with ``attention``; see ``rnnkit.plot.plot_attention``.
        """
        if self.attention is None:
            raise ValueError("this Seq2Seq has no attention (attention=None): no weights to show")
        if tgt is None:
            if tgt_lengths is not None:
                raise ValueError("tgt_lengths needs tgt")
            hyps = self.greedy_decode(src, src_lengths=src_lengths, max_len=max_len)
            rows = [h + [self.eos_id] if len(h) < max_len else h for h in hyps]
            T = max(len(r) for r in rows)
            tgt = np.full((len(rows), T), self.pad_id, np.int64)
            for b, r in enumerate(rows):
                tgt[b, :len(r)] = r
            tgt_lengths = np.array([len(r) for r in rows], np.int64)
        self.forward(src, tgt, src_lengths=src_lengths, tgt_lengths=tgt_lengths)
        tl = self._cache["tl"]
        weights = self.attn.last_weights.astype(np.float64)
        weights[np.arange(weights.shape[1])[None, :] >= tl[:, None]] = 0.0
        ids = np.asarray(tgt, np.int64)
        return [ids[b, :tl[b]].tolist() for b in range(len(tl))], weights

    # ------------------------------------------------------------------ decoding
    @property
    def _never_decoded(self):
        return (self.pad_id, self.bos_id)

    def _check_decode(self, max_len, beam_width=1, length_penalty=0.0):
        max_len = check_positive_int(max_len, "max_len", 1)
        return (max_len,) + check_beam(beam_width, length_penalty)

    def greedy_decode(self, src, *, src_lengths=None, max_len=50, return_scores=False):
        """Most likely token at each step until eos or ``max_len`` tokens (eos counted). Returns a
        list of id lists (eos removed) and, with ``return_scores``, their log-probabilities
        (eos included) as a float64 array."""
        max_len, _, _ = self._check_decode(max_len)
        logits, state = self._start(src, src_lengths)
        out, scores = decode(self._step, logits, state, max_len=max_len, eos_id=self.eos_id, greedy=True,
                             banned=self._never_decoded)
        return (out, scores) if return_scores else out

    def beam_search(self, src, *, src_lengths=None, beam_width=4, max_len=50, length_penalty=0.0,
                    return_scores=False):
        """Beam search with ``beam_width`` hypotheses per source, all sources and beams batched in
        one decoder call per step. A hypothesis ends at eos (it leaves the beam, the others go
        on) or after ``max_len`` tokens (eos counted); a source stops when no live hypothesis can
        beat its best finished one. The result maximises log p / len ** length_penalty (len
        counts eos; 0 = plain log-probability). Returns id lists (eos removed) and, with
        ``return_scores``, their log-probabilities (float64)."""
        max_len, k, alpha = self._check_decode(max_len, beam_width, length_penalty)
        logits, state = self._start(src, src_lengths)
        out, scores = beam_search(self._step, logits, state, eos_id=self.eos_id, beam_width=k,
                                  max_len=max_len, banned=self._never_decoded, length_penalty=alpha)
        return (out, scores) if return_scores else out

    @govern_blas()
    def predict(self, src, *, src_lengths=None, beam_width=1, max_len=50, length_penalty=0.0):
        """Decoded id lists: greedy for ``beam_width=1``, else beam search."""
        self._check_decode(max_len, beam_width, length_penalty)
        if beam_width == 1:
            return self.greedy_decode(src, src_lengths=src_lengths, max_len=max_len)
        return self.beam_search(src, src_lengths=src_lengths, beam_width=beam_width, max_len=max_len,
                                length_penalty=length_penalty)
