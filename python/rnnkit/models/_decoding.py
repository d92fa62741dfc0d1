"""Decoding shared by the generative models (``LanguageModel.generate``,
``VectorToSequence.generate``, ``Seq2Seq.greedy_decode`` / ``beam_search`` / ``predict``): the
argument checks, the choice of the next token (greedy, or sampling with temperature and top-k),
step-by-step decoding with that choice, and beam search.

A *step function* ``step(tokens (N,), state) -> (logits (N, V), state)`` runs a model one time
step for N rows; logits are unnormalised log-probabilities (log-probabilities will do). A *state*
is any nesting of lists / tuples / dicts / None around arrays whose axis 0 is the row (the layout
of ``rnnkit.nn`` recurrent states), so rows are reordered with ``take_rows``.

Both decoders start from ``(logits, state)``: each row's next-token logits and the state that
produced them, i.e. after a step on <bos> or after a language model's prompt.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_positive_int
from ..train.losses import log_softmax, softmax

__all__ = ["check_decoding", "check_sampling", "check_beam", "choose_next", "decode", "beam_search",
           "take_rows"]

METHODS = ("greedy", "sample", "beam")


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))


def check_sampling(temperature, top_k) -> None:
    """ValueError naming ``temperature`` (a finite number > 0) or ``top_k`` (None or an int >= 1)."""
    if not _is_number(temperature) or not np.isfinite(temperature) or not temperature > 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")


def check_beam(beam_width, length_penalty) -> tuple[int, float]:
    """(beam_width, length_penalty) as (int, float), or ValueError naming the argument."""
    beam_width = check_positive_int(beam_width, "beam_width")
    if not _is_number(length_penalty) or not np.isfinite(length_penalty) or length_penalty < 0:
        raise ValueError(f"length_penalty must be a finite number >= 0, got {length_penalty!r}")
    return beam_width, float(length_penalty)


def check_decoding(method, temperature, top_k, beam_width, max_len, length_penalty=0.0):
    """Validates ``VectorToSequence.generate``'s arguments (ValueError naming the argument)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_positive_int(max_len, "max_len")
    check_sampling(temperature, top_k)
    check_beam(beam_width, length_penalty)


def take_rows(state, idx):
    """The rows ``idx`` of every array in a (nested) state."""
    if state is None:
        return None
    if isinstance(state, dict):
        return {key: take_rows(value, idx) for key, value in state.items()}
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


def decode(step, logits, state, *, max_len: int, eos_id=None, greedy: bool = True,
           temperature: float = 1.0, top_k=None, rng=None, banned=()):
    """Greedy or sampled decoding of N rows at once, one ``choose_next`` per step.

    A row ends at ``eos_id`` (not returned; None: rows never end) or after ``max_len`` tokens
    (eos counted). Returns (one id list per row, the log-probability of each row's tokens, eos
    included, as a float64 (N,) array).
    """
    n = logits.shape[0]
    out = [[] for _ in range(n)]
    scores = np.zeros(n)
    done = np.zeros(n, bool)
    tokens = None
    for t in range(max_len):
        if t:
            logits, state = step(tokens, state)
        tokens = choose_next(logits, greedy=greedy, temperature=temperature, top_k=top_k, rng=rng,
                             banned=banned)
        chosen = log_softmax(np.asarray(logits, np.float64))[np.arange(n), tokens]
        scores += np.where(done, 0.0, chosen)
        ended = np.zeros(n, bool) if eos_id is None else tokens == eos_id
        for row in np.flatnonzero(~done & ~ended):
            out[row].append(int(tokens[row]))
        done |= ended
        if done.all():
            break
    return out, scores


def beam_search(step, logits, state, *, eos_id: int, beam_width: int, max_len: int, banned=(),
                length_penalty: float = 0.0):
    """Beam search for N sources at once (one ``step`` call per time step for all their beams).

    Each source keeps the ``beam_width`` best candidates by total log-probability; a candidate
    ending in ``eos_id`` is finished (scored by log p / len**length_penalty, len counting the end
    token) and leaves the beam, whose other candidates continue. A source stops when no live
    beam can beat its best finished hypothesis (exact for length_penalty = 0, since
    log-probabilities only decrease), or after ``max_len`` tokens (live beams are then finished
    without an end token). Ties go to the earlier hypothesis. With beam_width = 1 this is
    exactly greedy decoding.

    Returns (the best hypothesis of each source as an id list without <eos>, its log-probability
    (not length-normalised) as a float64 (N,) array).
    """
    n, V = logits.shape
    k = int(beam_width)

    def normalised(score, length):
        return score / length ** length_penalty if length_penalty else score

    live = np.zeros((n, 1))           # total log-probability of each beam; -inf: an empty slot
    tokens_at, parents_at = [], []    # per step (n, width): each slot's token and previous slot
    best = np.full(n, -np.inf)        # best finished hypothesis of each source: normalised score,
    best_logp = np.full(n, -np.inf)   # log-probability,
    best_end = [None] * n             # (step, slot, ended with eos)
    rows = np.arange(n)
    for t in range(max_len):
        if t:
            logits, state = step(tokens_at[-1].ravel(), state)
        width = live.shape[1]
        logp = _ban(log_softmax(np.asarray(logits, np.float64)), banned).reshape(n, width * V)
        total = (live.reshape(n, width, 1) + logp.reshape(n, width, V)).reshape(n, width * V)
        top = np.argsort(-total, axis=1, kind="stable")[:, :k]
        score = np.take_along_axis(total, top, axis=1)
        parent, token = np.divmod(top, V)
        ended = (token == eos_id) & np.isfinite(score)
        # the first best finished candidate in rank order; only a strictly better one replaces
        # an earlier hypothesis
        ended_score = np.where(ended, normalised(score, t + 1), -np.inf)
        slot = ended_score.argmax(axis=1)
        for b in np.flatnonzero(ended_score[rows, slot] > best):
            best[b], best_logp[b], best_end[b] = ended_score[b, slot[b]], score[b, slot[b]], (t, slot[b], True)
        live = np.where(ended, -np.inf, score)
        tokens_at.append(token)
        parents_at.append(parent)
        if length_penalty == 0:
            live[best >= live.max(axis=1)] = -np.inf  # nothing live can still win: stop the source
        if np.isneginf(live).all():
            break
        if t + 1 < max_len:
            state = take_rows(state, (rows[:, None] * width + parent).ravel())
    else:  # max_len reached: live beams are hypotheses too, cut without an end token
        final = normalised(live, max_len)
        for b in rows:
            slot = int(final[b].argmax())
            if final[b, slot] > best[b]:
                best[b], best_logp[b], best_end[b] = final[b, slot], live[b, slot], (max_len - 1, slot, False)
    return [_backtrack(tokens_at, parents_at, b, end) for b, end in enumerate(best_end)], best_logp


def _backtrack(tokens_at, parents_at, source, end) -> list:
    """The ids of the hypothesis of ``source`` ending at ``end`` = (step, slot, with eos)."""
    if end is None:  # no hypothesis had a finite score
        return []
    t, slot, with_eos = end
    seq = []
    for s in range(t, -1, -1):
        if not (s == t and with_eos):
            seq.append(int(tokens_at[s][source, slot]))
        slot = parents_at[s][source, slot]
    return seq[::-1]
