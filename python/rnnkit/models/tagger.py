"""``SequenceTagger``: one label per input token (many-to-many, aligned), e.g. part-of-speech
or named-entity tags.

Embedding -> recurrent stack (bidirectional by default, so each tag sees the whole sentence)
-> dropout -> per-step Linear -> tag logits (B, T, num_tags). The loss is the per-token
cross-entropy masked by ``lengths`` (``tagging_loss``, or the Trainer, which builds the same
mask for (N, T) targets): padded positions add nothing to the loss or the gradients, whatever
ids and tags they hold.
"""
from __future__ import annotations

import numpy as np

from .. import _device
from .. import nn
from .._checks import lengths_array
from ..nn.module import check_positive_int
from ..train.losses import cross_entropy, softmax
from ..nn.recurrent import recurrent_layer
from .networks import checked_token_ids

__all__ = ["SequenceTagger", "tagging_loss"]


def tagging_loss(logits, tags, lengths=None):
    """Mean cross-entropy over the valid tokens (t < lengths[b]); returns (loss, dlogits, count).
    Tags at padded positions are ignored (they may hold anything, e.g. -1)."""
    logits = np.asarray(logits)
    if logits.ndim != 3:
        raise ValueError(f"logits must be (B, T, num_tags), got shape {logits.shape}")
    B, T, _ = logits.shape
    L = lengths_array(lengths, B, T)
    mask = None if L is None else np.arange(T)[None, :] < L[:, None]
    return cross_entropy(logits, tags, mask=mask)


class SequenceTagger(nn.Module):
    """Token ids (B, T) -> tag logits (B, T, num_tags).

    Args: vocab_size, num_tags, and keyword-only embedding_dim=32, hidden_size=32, num_layers=1,
    cell ("lstm", "gru", "rnn"), bidirectional=True, dropout=0.0 (after the embedding and the
    recurrent stack, and between layers), recurrent_dropout, padding_idx=0, dtype, seed.

    forward(ids, *, lengths=None, training=False): logits at padded steps are zero.
    Parameters: ``embed.W``, ``rnn.l{k}.{fwd,bwd}.{Wx,Wh,b,bh}``, ``fc.{W,b}``.
    """

    def __init__(self, vocab_size, num_tags, *, embedding_dim=32, hidden_size=32, num_layers=1, cell="lstm",
                 bidirectional=True, dropout=0.0, recurrent_dropout=0.0, padding_idx=0, dtype=np.float32,
                 seed=None):
        super().__init__(seed)
        self.vocab_size = check_positive_int(vocab_size, "vocab_size")
        self.num_tags = check_positive_int(num_tags, "num_tags", 2)
        ss = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(5)]
        self.embed = nn.Embedding(self.vocab_size, embedding_dim, padding_idx=padding_idx, dtype=dtype, seed=ss[0])
        self.drop_in = nn.Dropout(dropout, seed=ss[1])
        self.rnn = recurrent_layer(cell)(embedding_dim, hidden_size, num_layers, bidirectional=bidirectional, batch_first=False,
                                     dropout=dropout, recurrent_dropout=recurrent_dropout, dtype=dtype, seed=ss[2])
        self.drop = nn.Dropout(dropout, seed=ss[3])
        self.fc = nn.Linear(self.rnn.output_size, self.num_tags, batch_first=False, dtype=dtype, seed=ss[4])

    def forward(self, ids, *, lengths=None, training=False):
        ids = checked_token_ids(ids, self.vocab_size)
        B, T = ids.shape
        lengths = lengths_array(lengths, B, T)
        xp = self._xp()
        x = self.drop_in.forward(self.embed.forward(xp.ascontiguousarray(ids.T)), training=training)
        y = self.rnn.forward(x, lengths=lengths, training=training)
        logits = self.fc.forward(self.drop.forward(y, training=training), lengths=lengths)
        return logits.transpose(1, 0, 2)

    def backward(self, grad):
        xp = self._xp()
        grad = grad if _device.backend_of(grad) is not None else np.asarray(grad)
        dy = self.drop.backward(self.fc.backward(grad.transpose(1, 0, 2)))
        dx = self.rnn.backward(xp.ascontiguousarray(dy))
        self.embed.backward(xp.ascontiguousarray(self.drop_in.backward(dx)))
        return None

    def predict_proba(self, ids, lengths=None):
        """Tag probabilities (B, T, num_tags) (rows at padded steps are uniform)."""
        return softmax(self.forward(ids, lengths=lengths).astype(np.float64))

    def predict(self, ids, lengths=None):
        """Most likely tag per token, (B, T) int64, -1 at padded positions."""
        logits = self.forward(ids, lengths=lengths)
        tags = _device.to_host(logits.argmax(axis=-1)).astype(np.int64)
        if lengths is not None:
            B, T = tags.shape
            tags[np.arange(T)[None, :] >= np.asarray(lengths)[:, None]] = -1
        return tags
