"""Decoding helpers shared by the generative models: argument checks, greedy / temperature /
top-k choice of the next token for a batch, and beam search over a step function.

A *step function* ``step(tokens (n,), state) -> (logits (n, V), state)`` runs the model one
time step for n rows; a *state* is any nesting of lists/tuples/None around arrays whose axis 0
is the row (the layout of ``rnnkit.nn`` recurrent states), so beams are reordered with
``take_rows``.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_positive_int
from ..train.losses import log_softmax, softmax

__all__ = ["check_decoding", "choose_next", "beam_search", "take_rows"]

METHODS = ("greedy", "sample", "beam")


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def check_decoding(method, temperature, top_k, beam_width, max_len):
    """Validates the generation arguments (ValueError naming the argument)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_positive_int(max_len, "max_len")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating, np.integer)) \
            or not np.isfinite(temperature) or not temperature > 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    check_positive_int(beam_width, "beam_width")


def take_rows(state, idx):
    """The rows ``idx`` of every array in a (nested) state."""
    if state is None:
        return None
    if isinstance(state, (list, tuple)):
        return type(state)(take_rows(s, idx) for s in state)
    return np.ascontiguousarray(state[idx])


def _ban(logits: np.ndarray, banned) -> np.ndarray:
    z = np.array(logits, dtype=np.float64)
    if banned:
        z[..., list(banned)] = -np.inf
    return z


def choose_next(logits, *, greedy: bool, temperature: float = 1.0, top_k=None, rng=None,
                banned=()) -> np.ndarray:
    """Next token of each row of ``logits`` (n, V): argmax (``greedy``, first index on ties) or a
    draw from softmax(logits / temperature) restricted to the ``top_k`` largest logits. Ids in
    ``banned`` (padding, <bos>) are never chosen."""
    z = _ban(logits, banned)
    if greedy:
        return z.argmax(axis=-1)
    z = z / float(temperature)
    if top_k is not None and top_k < z.shape[-1]:
        cut = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < cut, -np.inf, z)
    p = softmax(z)
    u = rng.random(z.shape[0])[:, None]
    # inverse-CDF draw per row (vectorised rng.choice); clip guards the last cumulative sum < 1
    return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), z.shape[-1] - 1)


def beam_search(step, state, *, bos_id: int, eos_id: int, beam_width: int, max_len: int,
                banned=(), length_penalty: float = 0.0):
    """Beam search for one sequence. ``state``: the initial state for one row.

    Keeps the ``beam_width`` best partial sequences by total log-probability; a candidate that
    ends in ``eos_id`` is finished (scored by log p / len**length_penalty, len counting the end
    token). Stops when no live beam can beat the best finished one (exact for
    length_penalty = 0, since log-probabilities only decrease), or after ``max_len`` tokens
    (live beams are then finished without an end token). Returns (tokens without <eos>, score).
    With beam_width = 1 this is exactly greedy decoding.
    """
    k = int(beam_width)
    tokens = np.array([bos_id])
    seqs = [[]]
    scores = np.zeros(1)
    finished = []  # (normalised score, tokens)

    def norm(score, n):
        return score / (n ** length_penalty) if length_penalty else score

    for t in range(max_len):
        logits, state = step(tokens, state)
        logp = log_softmax(_ban(logits, banned))
        total = (scores[:, None] + logp).ravel()
        order = np.argsort(-total, kind="stable")[:k]
        V = logp.shape[1]
        live_rows, live_tok, live_scores, live_seqs = [], [], [], []
        for flat in order:
            if not np.isfinite(total[flat]):
                break
            row, tok = divmod(int(flat), V)
            if tok == eos_id:
                finished.append((norm(total[flat], len(seqs[row]) + 1), seqs[row]))
            else:
                live_rows.append(row)
                live_tok.append(tok)
                live_scores.append(total[flat])
                live_seqs.append(seqs[row] + [tok])
        if not live_rows:
            break
        best_done = max((s for s, _ in finished), default=-np.inf)
        if length_penalty == 0 and best_done >= max(live_scores):
            break
        state = take_rows(state, np.array(live_rows))
        tokens = np.array(live_tok)
        scores = np.array(live_scores)
        seqs = live_seqs
    else:
        finished.extend((norm(s, len(q)), q) for s, q in zip(scores, seqs))
    best = max(finished, key=lambda f: f[0])
    return list(best[1]), float(best[0])
