"""Seq2Seq (rnnkit.models.seq2seq): whole-model gradient checks, decoding, padding, bad input."""
import numpy as np
import pytest

from rnnkit.models import LuongAttention, Seq2Seq
from rnnkit.text import Vocabulary

PAD, BOS, EOS = 0, 1, 2


def make(cell="lstm", attention=None, *, layers=2, bidirectional=True, bridge="concat", V_src=9, V_tgt=7,
         seed=3, **kw):
    return Seq2Seq(V_src, V_tgt, bos_id=BOS, eos_id=EOS, embedding_dim=3, hidden_size=4, decoder_hidden_size=5,
                   num_layers=layers, cell=cell, bidirectional=bidirectional, bridge=bridge, attention=attention,
                   dtype=np.float64, seed=seed, **kw)


def batch(rng, B=3, S=5, T=4, V_src=9, V_tgt=7):
    src = rng.integers(3, V_src, (B, S))
    sl = np.array([5, 2, 3])[:B]
    tgt = rng.integers(2, V_tgt, (B, T))
    tl = np.array([4, 1, 3])[:B]
    return src, sl, tgt, tl


def gradcheck(model, src, sl, tgt, tl, rng, per_param=4):
    """Central differences on L = sum(logits * R) for a few entries of every parameter.

    Tolerance: float64 with eps = 1e-6 gives truncation error O(eps^2 * f''') ~ 1e-12 and
    round-off ~ 1e-16 * |L| / eps ~ 1e-9 (|L| ~ 10); relative to |num| + |ana| floored at 1e-3
    that is < 1e-6. A wrong term (a missing path, a sign, a transposed block) gives errors of
    order 1e-1 or more, so 2e-6 separates the two with a wide margin."""
    R = rng.standard_normal((src.shape[0], tgt.shape[1], model.tgt_vocab_size))

    def loss():
        return float((model.forward(src, tgt, src_lengths=sl, tgt_lengths=tl) * R).sum())

    model.zero_grad()
    model.forward(src, tgt, src_lengths=sl, tgt_lengths=tl)
    assert model.backward(R) is None
    grads = model.grads()
    checked = 0
    for name, p in model.parameters().items():
        g = grads[name]
        for i in rng.choice(p.size, min(p.size, per_param), replace=False):
            old = p.flat[i]
            p.flat[i] = old + 1e-6
            fp = loss()
            p.flat[i] = old - 1e-6
            fm = loss()
            p.flat[i] = old
            num = (fp - fm) / 2e-6
            err = abs(num - g.flat[i]) / max(1e-3, abs(num) + abs(g.flat[i]))
            assert err < 2e-6, f"{name}[{i}]: numerical {num:.10g} vs analytic {g.flat[i]:.10g}"
            checked += 1
    return checked


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", [None, "dot", "additive"])
def test_gradcheck_bidirectional_stacked(cell, attention):
    rng = np.random.default_rng(0)
    model = make(cell, attention)
    names = list(model.parameters())
    # every part of the model is in the check: encoder both directions of both layers, bridges,
    # decoder, embeddings, attention, output layer
    assert any(n.startswith("encoder.l1.bwd.") for n in names)
    assert any(n.startswith("bridge_h1") for n in names)
    assert ("bridge_c0.W" in names) == (cell == "lstm")
    assert any(n.startswith("attn.") for n in names) == (attention is not None)
    assert gradcheck(model, *batch(rng), rng) >= 4 * len(names) - 8


@pytest.mark.parametrize("cell,bridge,bidirectional", [("lstm", "sum", True), ("rnn", "concat", True),
                                                       ("gru", "concat", False)])
def test_gradcheck_bridge_variants(cell, bridge, bidirectional):
    rng = np.random.default_rng(1)
    model = make(cell, "dot", layers=1, bidirectional=bidirectional, bridge=bridge)
    assert gradcheck(model, *batch(rng), rng, per_param=3) > 0


def test_gradient_of_padding_is_zero_and_logits_zero_at_padded_targets():
    rng = np.random.default_rng(2)
    model = make("lstm", "additive")
    src, sl, tgt, tl = batch(rng)
    logits = model.forward(src, tgt, src_lengths=sl, tgt_lengths=tl)
    assert np.all(logits[1, 1:] == 0) and np.all(logits[2, 3:] == 0)
    model.zero_grad()
    model.backward(rng.standard_normal(logits.shape))
    # embeddings of tokens that occur only in padding get no gradient
    valid = np.arange(5)[None, :] < sl[:, None]
    src2 = np.where(valid, np.where(src == 8, 3, src), 8)  # id 8 only in the padding
    model.zero_grad()
    logits = model.forward(src2, tgt, src_lengths=sl, tgt_lengths=tl)
    model.backward(rng.standard_normal(logits.shape))
    assert np.all(model.grads()["src_embed.W"][8] == 0)


# ---------------------------------------------------------------------- padding
@pytest.mark.parametrize("cell,attention", [("lstm", "dot"), ("gru", "additive"), ("lstm", None)])
def test_source_padding_never_changes_outputs(cell, attention):
    """Each row of a padded batch (padding filled with arbitrary valid ids) gives the logits and
    the decoding of that sequence alone, unpadded. float64 kernels agree to ~1e-12 with the
    reference; 1e-10 leaves room for the different summation order of the batched GEMMs."""
    rng = np.random.default_rng(4)
    model = make(cell, attention)
    src, sl, tgt, tl = batch(rng)
    src[1, 2:] = rng.integers(3, 9, 3)  # junk in the padding
    logits = model.forward(src, tgt, src_lengths=sl, tgt_lengths=tl)
    greedy, gs = model.greedy_decode(src, src_lengths=sl, max_len=6, return_scores=True)
    beam, bs = model.beam_search(src, src_lengths=sl, beam_width=3, max_len=6, return_scores=True)
    for b in range(3):
        one = model.forward(src[b:b + 1, :sl[b]], tgt[b:b + 1, :tl[b]])
        np.testing.assert_allclose(logits[b, :tl[b]], one[0], atol=1e-10, rtol=0)
        g1, s1 = model.greedy_decode(src[b:b + 1, :sl[b]], max_len=6, return_scores=True)
        assert g1[0] == greedy[b]
        np.testing.assert_allclose(s1[0], gs[b], atol=1e-10)
        b1 = model.beam_search(src[b:b + 1, :sl[b]], beam_width=3, max_len=6)
        assert b1[0] == beam[b]


def test_context_ignores_padding():
    model = make("lstm", None)
    src = np.array([[3, 4, 5, 0, 0], [3, 4, 5, 7, 8]])
    _, _, _, init, ctx = model._encode(src, np.array([3, 3]), False)
    np.testing.assert_allclose(ctx[0], ctx[1], atol=1e-12)
    for (h0, c0) in init:
        np.testing.assert_allclose(h0[0], h0[1], atol=1e-12)
        np.testing.assert_allclose(c0[0], c0[1], atol=1e-12)
    _, _, _, _, ctx_full = model._encode(src, None, False)
    assert np.abs(ctx_full[0] - ctx_full[1]).max() > 1e-6  # the lengths did matter


# ---------------------------------------------------------------------- decoding
def test_greedy_equals_beam_width_one_and_scores_match_teacher_forced_log_prob():
    rng = np.random.default_rng(6)
    for attention in (None, "dot"):
        model = make("gru", attention, V_tgt=5, seed=11)
        src, sl, _, _ = batch(rng)
        g, gs = model.greedy_decode(src, src_lengths=sl, max_len=7, return_scores=True)
        b, bs = model.beam_search(src, src_lengths=sl, beam_width=1, max_len=7, return_scores=True)
        assert g == b
        np.testing.assert_allclose(gs, bs, atol=1e-12)
        assert model.predict(src, src_lengths=sl, max_len=7) == g
        # the step-by-step decoder (T=1 calls carrying state) and the fused teacher-forced path
        # agree: the score of each greedy output equals its teacher-forced log-probability
        for k, seq in enumerate(g):
            assert len(seq) <= 7 and EOS not in seq and PAD not in seq and BOS not in seq
            full = seq + [EOS] if len(seq) < 7 else seq
            lp = model.log_prob(src[k:k + 1], np.array([full]), src_lengths=sl[k:k + 1])
            np.testing.assert_allclose(lp[0], gs[k], atol=1e-10)


class Markov(Seq2Seq):
    """A Seq2Seq whose next-token distribution depends only on the previous token (a fixed table):
    a constructed case where the greedy choice is not the most likely sequence."""

    table = None

    def _step(self, tokens, state):
        return np.log(self.table[np.asarray(tokens)] + 1e-12), state


def markov(table):
    m = Markov(5, 6, bos_id=BOS, eos_id=EOS, embedding_dim=2, hidden_size=2, dtype=np.float64, seed=0)
    m.table = np.asarray(table, float)
    return m


A, B_, C = 3, 4, 5
#         pad  bos  eos   A    B    C
TABLE = [[0,   0,   1,    0,   0,   0],      # after pad (unused)
         [0,   0,   0,   .5,  .4,  .1],      # after bos: greedy takes A
         [0,   0,   1,    0,   0,   0],      # after eos
         [0,   0,  .3,    0,  .3,  .4],      # after A: best is C (0.4)
         [0,   0,   1,    0,   0,   0],      # after B: eos surely
         [0,   0,   1,    0,   0,   0]]      # after C: eos surely


def test_beam_finds_higher_scoring_sequence_than_greedy():
    m = markov(TABLE)
    src = np.array([[3, 4], [4, 4]])
    g, gs = m.greedy_decode(src, max_len=5, return_scores=True)
    b, bs = m.beam_search(src, beam_width=2, max_len=5, return_scores=True)
    assert g == [[A, C], [A, C]]           # p = .5 * .4 * 1 = .2
    assert b == [[B_], [B_]]               # p = .4 * 1 = .4
    np.testing.assert_allclose(gs, np.log(.2), atol=1e-9)
    np.testing.assert_allclose(bs, np.log(.4), atol=1e-9)
    assert np.all(bs > gs)


def test_max_len_and_eos_handling():
    loop = [row[:] for row in TABLE]
    loop[A] = [0, 0, .1, .9, 0, 0]          # A keeps repeating itself
    m = markov(loop)
    src = np.array([[3]])
    assert m.greedy_decode(src, max_len=4) == [[A, A, A, A]]       # cut at max_len, no eos
    assert m.beam_search(src, beam_width=1, max_len=4) == [[A, A, A, A]]
    assert m.greedy_decode(src, max_len=1) == [[A]]
    # beam_width 3, max_len 3: A A A is cut at max_len with p = .5 * .9 * .9 = .405, more than
    # the finished [B, eos] (.4): the likeliest hypothesis wins whether or not it finished
    out, sc = m.beam_search(src, beam_width=3, max_len=3, return_scores=True)
    assert out == [[A, A, A]] and np.isclose(sc[0], np.log(.405))
    # max_len 8: A^8 (.5 * .9^7 = .239, unfinished) < [B, eos] (.4): eos ends B's hypothesis,
    # a finished hypothesis is carried unchanged and eos is not returned
    out, sc = m.beam_search(src, beam_width=3, max_len=8, return_scores=True)
    assert out == [[B_]] and np.isclose(sc[0], np.log(.4))
    # length_penalty = 1 ranks by log p / len: A^8 -0.179 beats [B, eos] log(.4) / 2 = -0.458
    out, sc = m.beam_search(src, beam_width=3, max_len=8, length_penalty=1.0, return_scores=True)
    assert out == [[A] * 8] and np.isclose(sc[0], np.log(.5 * .9 ** 7))


def test_decoding_a_real_model_respects_max_len():
    rng = np.random.default_rng(7)
    model = make("lstm", "additive")
    src, sl, _, _ = batch(rng)
    for k in (1, 2, 4):
        out = model.predict(src, src_lengths=sl, beam_width=k, max_len=3)
        assert len(out) == 3 and all(len(s) <= 3 for s in out)
        assert all(t not in (PAD, BOS, EOS) for s in out for t in s)


# ---------------------------------------------------------------------- training
def test_teacher_forcing_zero_feeds_the_models_own_predictions():
    rng = np.random.default_rng(8)
    model = make("lstm", "dot", teacher_forcing=0.0)
    src, sl, tgt, _ = batch(rng, T=5)
    tl = np.full(3, 5)
    logits = model.forward(src, tgt, src_lengths=sl, tgt_lengths=tl, training=True)
    z = logits.copy()
    z[..., [PAD, BOS]] = -np.inf
    pred = z.argmax(-1)
    # the inputs were bos, pred_0, pred_1, ...: the same as teacher forcing on the predictions
    again = model.forward(src, pred, src_lengths=sl, tgt_lengths=tl)
    np.testing.assert_allclose(logits, again, atol=1e-10)
    model.teacher_forcing = 1.0
    gold = model.forward(src, tgt, src_lengths=sl, tgt_lengths=tl, training=True)
    assert np.abs(gold - logits).max() > 1e-6


def test_fit_learns_to_reverse_short_sequences():
    rng = np.random.default_rng(9)
    N, S = 400, 4
    sl = rng.integers(2, S + 1, N)
    src = np.where(np.arange(S)[None, :] < sl[:, None], rng.integers(3, 7, (N, S)), 0)
    tgt = np.zeros((N, S + 1), np.int64)
    for i in range(N):
        tgt[i, :sl[i]] = src[i, :sl[i]][::-1] - 0   # same ids 3..6 in a 7-token target vocab
        tgt[i, sl[i]] = EOS
    model = Seq2Seq(7, 7, bos_id=BOS, eos_id=EOS, embedding_dim=8, hidden_size=24, attention="dot",
                    teacher_forcing=0.9, seed=0)
    hist = model.fit(src, tgt, src_lengths=sl, tgt_lengths=sl + 1, epochs=25, batch_size=32, lr=1e-2)
    assert hist[-1] < 0.25 * hist[0]
    out = model.predict(src[:100], src_lengths=sl[:100])
    acc = np.mean([o == list(tgt[i, :sl[i]]) for i, o in enumerate(out)])
    assert acc > 0.8, acc


def _reversal_data(N=96, S=4, seed=9):
    rng = np.random.default_rng(seed)
    sl = rng.integers(2, S + 1, N)
    src = np.where(np.arange(S)[None, :] < sl[:, None], rng.integers(3, 7, (N, S)), 0)
    tgt = np.zeros((N, S + 1), np.int64)
    for i in range(N):
        tgt[i, :sl[i]] = src[i, :sl[i]][::-1]
        tgt[i, sl[i]] = EOS
    return src, tgt, sl, sl + 1


def test_fit_is_a_trainer_run_on_the_four_named_arrays():
    from rnnkit.train import Trainer

    src, tgt, sl, tl = _reversal_data()
    make = lambda: Seq2Seq(7, 7, bos_id=BOS, eos_id=EOS, embedding_dim=8, hidden_size=12, attention="dot",
                           dropout=0.1, seed=0)
    by_fit, by_trainer = make(), make()
    losses = by_fit.fit(src, tgt, src_lengths=sl, tgt_lengths=tl, epochs=2, batch_size=16, lr=1e-2, seed=4)
    trainer = Trainer(by_trainer, lr=1e-2, clip_norm=5.0, seed=4, quiet=True, bucket_pool=50)
    history = trainer.fit({"src": src, "tgt": tgt, "src_lengths": sl, "tgt_lengths": tl}, (src, tgt, sl, tl),
                          epochs=2, batch_size=16)
    assert isinstance(losses, list) and losses == history["loss"]
    fitted, trained = by_fit.parameters(), by_trainer.parameters()
    assert all(np.array_equal(fitted[k], trained[k]) for k in fitted)
    # the validation loss is the masked cross-entropy over the valid target steps, in inference mode
    total = count = 0.0
    for i in range(0, len(src), 64):
        b = slice(i, i + 64)
        logits = by_trainer.forward(src[b], tgt[b], src_lengths=sl[b], tgt_lengths=tl[b])
        valid = np.arange(tgt.shape[1])[None, :] < tl[b, None]
        logp = np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
        total -= np.take_along_axis(logp, tgt[b, :, None], -1)[..., 0][valid].sum()
        count += valid.sum()
    assert history["val_loss"][-1] == pytest.approx(total / count, rel=1e-5)


def test_trainer_reports_bad_target_ids_at_their_place_in_the_data_set():
    from rnnkit.train import Trainer

    src, tgt, sl, tl = _reversal_data()
    tgt[40, 1] = 7  # the target vocabulary has ids 0..6
    model = Seq2Seq(7, 7, bos_id=BOS, eos_id=EOS, embedding_dim=4, hidden_size=4, seed=0)
    with pytest.raises(IndexError, match=r"train: tgt\[40, 1\] = 7 is out of range for the model's 7 classes"):
        Trainer(model, quiet=True).fit((src, tgt, sl, tl), batch_size=16)
    with pytest.raises(ValueError, match="src has 96 samples but tgt_lengths has 95"):
        Trainer(model, quiet=True).fit((src, tgt, sl, tl[:-1]))


def test_forward_backward_accumulates_and_float32_runs():
    rng = np.random.default_rng(10)
    src, sl, tgt, tl = batch(rng)
    model = Seq2Seq(9, 7, bos_id=BOS, eos_id=EOS, attention="additive", seed=1)  # float32 default
    model.zero_grad()
    loss, count = model.forward_backward(src, tgt, src_lengths=sl, tgt_lengths=tl)
    assert np.isfinite(loss) and count == tl.sum()
    g1 = {k: v.copy() for k, v in model.grads().items()}
    model.forward_backward(src, tgt, src_lengths=sl, tgt_lengths=tl)
    for k, v in model.grads().items():
        assert v.dtype == np.float32
        np.testing.assert_allclose(v, 2 * g1[k], rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------- bad input
def test_bad_input_raises_clear_errors():
    rng = np.random.default_rng(12)
    model = make("lstm", "dot")
    src, sl, tgt, tl = batch(rng)
    with pytest.raises(IndexError, match="tgt contains id 7 .*tgt_vocab_size=7"):
        model.forward(src, np.full((3, 4), 7), src_lengths=sl)
    with pytest.raises(IndexError, match="src contains id 9"):
        model.forward(np.full((3, 5), 9), tgt)
    with pytest.raises(ValueError, match="tgt_vocab has 4 tokens but tgt_vocab_size is 7"):
        make(tgt_vocab=Vocabulary([["a", "b"]]))
    with pytest.raises(ValueError, match="src is empty"):
        model.forward(np.zeros((3, 0), np.int64), tgt)
    with pytest.raises(ValueError, match="src is empty"):
        model.greedy_decode(np.zeros((0, 4), np.int64))
    with pytest.raises(ValueError, match=r"src_lengths\[1\] = 0"):
        model.forward(src, tgt, src_lengths=np.array([5, 0, 3]))
    with pytest.raises(ValueError, match=r"src_lengths\[0\] = 6 is outside \[0, T=5\]"):
        model.forward(src, tgt, src_lengths=np.array([6, 2, 3]))
    with pytest.raises(ValueError, match=r"tgt_lengths\[2\] = 9 is outside \[0, T=4\]"):
        model.forward(src, tgt, tgt_lengths=np.array([1, 1, 9]))
    with pytest.raises(ValueError, match=r"src_lengths must have shape \(B,\)"):
        model.beam_search(src, src_lengths=np.array([1, 2]))
    with pytest.raises(TypeError, match="src_lengths must be an integer array"):
        model.forward(src, tgt, src_lengths=np.array([1.0, 2.0, 3.0]))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="beam_width must be an int >= 1"):
            model.beam_search(src, beam_width=bad)
        with pytest.raises(ValueError, match="beam_width must be an int >= 1"):
            model.predict(src, beam_width=bad)
    with pytest.raises(ValueError, match="max_len must be an int >= 1"):
        model.greedy_decode(src, max_len=0)
    with pytest.raises(ValueError, match="length_penalty"):
        model.beam_search(src, length_penalty=-1.0)
    with pytest.raises(ValueError, match="tgt has 2 sequences but src has 3"):
        model.forward(src, tgt[:2])
    with pytest.raises(ValueError, match="tgt is empty"):
        model.forward(src, np.zeros((3, 0), np.int64))
    with pytest.raises(TypeError, match="src must be an integer array"):
        model.forward(src.astype(float), tgt)
    with pytest.raises(ValueError, match="teacher_forcing must be a probability"):
        make(teacher_forcing=1.5)
    model.teacher_forcing = -0.1
    with pytest.raises(ValueError, match="teacher_forcing must be a probability"):
        model.forward(src, tgt, training=True)
    with pytest.raises(ValueError, match="eos_id must be a target id"):
        Seq2Seq(5, 4, bos_id=1, eos_id=4)
    with pytest.raises(ValueError, match="must be distinct"):
        Seq2Seq(5, 4, bos_id=1, eos_id=1)
    with pytest.raises(ValueError, match="attention must be one of"):
        make(attention="luong")
    with pytest.raises(ValueError, match="bridge must be one of"):
        make(bridge="mean")
    with pytest.raises(ValueError, match="cell must be one of"):
        make(cell="tcn")
    with pytest.raises(RuntimeError, match="backward called before forward"):
        make().backward(np.zeros((1, 1, 7)))
    with pytest.raises(ValueError, match="grad must have the logits' shape"):
        m = make()
        m.forward(src, tgt)
        m.backward(np.zeros((3, 4, 6)))
    with pytest.raises(ValueError, match="score must be 'dot' or 'additive'"):
        LuongAttention(4, 4, score="general")


def test_attention_weights_teacher_forced_and_decoded():
    rng = np.random.default_rng(0)
    model = Seq2Seq(10, 7, bos_id=1, eos_id=2, pad_id=0, embedding_dim=6, hidden_size=6,
                    attention="dot", seed=0)
    src = rng.integers(3, 10, (2, 5))
    tgt = np.array([[3, 4, 2, 0], [5, 2, 0, 0]])
    targets, w = model.attention_weights(src, tgt, src_lengths=[5, 3], tgt_lengths=[3, 2])
    assert targets == [[3, 4, 2], [5, 2]] and w.shape == (2, 4, 5) and w.dtype == np.float64
    np.testing.assert_allclose(w[0, :3].sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(w[1, 2:] == 0) and np.all(w[1, :, 3:] == 0)
    decoded, wd = model.attention_weights(src, src_lengths=[5, 3], max_len=4)
    hyps = model.greedy_decode(src, src_lengths=[5, 3], max_len=4)
    for h, t in zip(hyps, decoded):
        assert t == (h + [2] if len(h) < 4 else h)
    with pytest.raises(ValueError, match="no attention"):
        Seq2Seq(10, 7, bos_id=1, eos_id=2, seed=0).attention_weights(src, tgt)
