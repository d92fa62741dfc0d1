# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From NumPy to rnnkit
#
# The classic way to learn recurrent networks is to write them in NumPy: one function for a
# single time step, a loop over time for the forward pass, and backpropagation through time
# (BPTT) as the same loop run backwards. This notebook writes a vanilla RNN and an LSTM that
# way, checks the gradients numerically, and then changes **only the import** to run the same
# cells on rnnkit's fused C++ kernels (`rnnkit.dropin`): same function names, same arguments,
# same batch-first shapes, the same numbers, measured speed-up.
#
# Shapes: `N` sequences in a batch, `T` time steps, `D` input features, `H` hidden units.

# %%
import time

import numpy as np

# %% [markdown]
# ## A vanilla RNN in NumPy
#
# One step computes `h_t = tanh(x_t Wx + h_{t-1} Wh + b)`. The cache keeps what the backward
# step needs; `tanh'(a) = 1 - tanh(a)^2` is computed from the output.

# %%
def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1.0 - next_h ** 2)
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = np.zeros((N, T, h0.shape[1]), dtype=x.dtype)
    caches, prev = [], h0
    for t in range(T):
        prev, cache = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        caches.append(cache)
    return h, caches


def rnn_backward(dh, caches):
    N, T, H = dh.shape
    dx = np.zeros((N, T, caches[0][0].shape[1]), dtype=dh.dtype)
    dWx, dWh, db = (np.zeros_like(a) for a in (caches[0][2], caches[0][3], dh[0, 0]))
    dprev = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        # the gradient reaching h_t: from the loss at t and from step t+1
        dx[:, t], dprev, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + dprev, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev, dWx, dWh, db


# %% [markdown]
# ## An LSTM in NumPy
#
# The four gates are computed by one product, `a = x_t Wx + h_{t-1} Wh + b` with `4H` columns,
# split into the blocks **i, f, o, g** (input, forget, output gates and the candidate):
# `c_t = f * c_{t-1} + i * g`, `h_t = o * tanh(c_t)`. The cell state starts at zero.

# %%
def sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))      # overflow-free form


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    do = dnext_h * tanh_c
    dc = dnext_c + dnext_h * o * (1.0 - tanh_c ** 2)
    di, df, dg = dc * g, dc * prev_c, dc * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)],
                        axis=1)
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = np.zeros((N, T, h0.shape[1]), dtype=x.dtype)
    caches, prev_h, prev_c = [], h0, np.zeros_like(h0)
    for t in range(T):
        prev_h, prev_c, cache = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        caches.append(cache)
    return h, caches


def lstm_backward(dh, caches):
    N, T, H = dh.shape
    dx = np.zeros((N, T, caches[0][0].shape[1]), dtype=dh.dtype)
    dWx, dWh = np.zeros_like(caches[0][3]), np.zeros_like(caches[0][4])
    db = np.zeros(4 * H, dtype=dh.dtype)
    dprev_h, dprev_c = np.zeros((N, H), dh.dtype), np.zeros((N, H), dh.dtype)
    for t in reversed(range(T)):
        dx[:, t], dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + dprev_h, dprev_c, caches[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db


# %% [markdown]
# ## Are the NumPy gradients right?
#
# A centred finite difference of the loss `sum(h * dh)` for a few entries of each input, on a
# tiny float64 problem, against what the backward functions return.

# %%
rng = np.random.default_rng(0)


def problem(N, T, D, H, gates, dtype=np.float64):
    return (rng.standard_normal((N, T, D)).astype(dtype),
            rng.standard_normal((N, H)).astype(dtype),
            (rng.standard_normal((D, gates * H)) / np.sqrt(D)).astype(dtype),
            (rng.standard_normal((H, gates * H)) / np.sqrt(H)).astype(dtype),
            (0.1 * rng.standard_normal(gates * H)).astype(dtype))


def max_relative_error(forward, backward, args, eps=1e-6, probes=5):
    """Largest relative error between backward's gradients and finite differences."""
    h, cache = forward(*args)
    dh = rng.standard_normal(h.shape)
    grads = backward(dh, cache)
    worst = 0.0
    for arg, grad in zip(args, grads):
        for flat in rng.choice(arg.size, size=min(probes, arg.size), replace=False):
            idx = np.unravel_index(flat, arg.shape)
            old = arg[idx]
            arg[idx] = old + eps
            plus = np.sum(forward(*args)[0] * dh)
            arg[idx] = old - eps
            minus = np.sum(forward(*args)[0] * dh)
            arg[idx] = old
            numeric = (plus - minus) / (2 * eps)
            worst = max(worst, abs(numeric - grad[idx]) / max(1e-8, abs(numeric) + abs(grad[idx])))
    return worst


rnn_error = max_relative_error(rnn_forward, rnn_backward, problem(3, 5, 4, 6, 1))
lstm_error = max_relative_error(lstm_forward, lstm_backward, problem(3, 5, 4, 6, 4))
print(f"largest relative error: RNN {rnn_error:.1e}, LSTM {lstm_error:.1e}")
assert rnn_error < 1e-6 and lstm_error < 1e-6

# %% [markdown]
# ## The same cells on rnnkit
#
# Keep the NumPy versions under other names, then run the same import line a notebook would
# use: from here on `rnn_forward`, `lstm_backward`, ... are rnnkit's.

# %%
numpy_impl = {name: globals()[name] for name in
              ["rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward"]}

from rnnkit.dropin import lstm_backward, lstm_forward, rnn_backward, rnn_forward  # noqa: E402

# %% [markdown]
# Same inputs, both implementations, float64: the largest absolute difference of every output
# and every gradient.

# %%
def compare(cell, args, dh_seed=1):
    h_np, cache_np = numpy_impl[f"{cell}_forward"](*args)
    h_rk, cache_rk = globals()[f"{cell}_forward"](*args)
    dh = np.random.default_rng(dh_seed).standard_normal(h_np.shape)
    grads_np = numpy_impl[f"{cell}_backward"](dh, cache_np)
    grads_rk = globals()[f"{cell}_backward"](dh, cache_rk)
    names = ["h", "dx", "dh0", "dWx", "dWh", "db"]
    diffs = [np.max(np.abs(a - b)) for a, b in zip((h_np, *grads_np), (h_rk, *grads_rk))]
    print(cell.upper().ljust(5), "  ".join(f"{n} {d:.1e}" for n, d in zip(names, diffs)))
    return max(diffs)


args_rnn = problem(16, 30, 20, 24, 1)
args_lstm = problem(16, 30, 20, 24, 4)
worst = max(compare("rnn", args_rnn), compare("lstm", args_lstm))
assert worst < 1e-10
print(f"largest difference anywhere: {worst:.1e}")

# %% [markdown]
# The differences are at the level of float64 rounding (the kernels sum in a different order):
# the same numbers.
#
# ## How much faster?
#
# Forward and backward at the size of a typical course exercise, timed for each
# implementation: the best of three runs after one untimed run.

# %%
def best_time(forward, backward, args, repeats=3):
    h, cache = forward(*args)
    dh = np.ones_like(h)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        h, cache = forward(*args)
        backward(dh, cache)
        best = min(best, time.perf_counter() - start)
    return best


N, T, D, H = 32, 50, 128, 128
speedups = {}
for cell, gates in [("rnn", 1), ("lstm", 4)]:
    for dtype in (np.float64, np.float32):
        args = problem(N, T, D, H, gates, dtype)
        t_np = best_time(numpy_impl[f"{cell}_forward"], numpy_impl[f"{cell}_backward"], args)
        t_rk = best_time(globals()[f"{cell}_forward"], globals()[f"{cell}_backward"], args)
        speedups[cell, np.dtype(dtype).name] = t_np / t_rk
        print(f"{cell.upper():5} {np.dtype(dtype).name}: NumPy {1e3 * t_np:7.1f} ms, "
              f"rnnkit {1e3 * t_rk:6.1f} ms, speed-up x{t_np / t_rk:.1f}")

# %%
import rnnkit  # noqa: E402

print(f"measured with {rnnkit.get_num_threads()} thread(s), SIMD kernels: {rnnkit.get_isa()}")
# no assertion on the ratios: timings depend on the machine and on what else runs on it

# %% [markdown]
# The speed-ups above are this machine's, measured when the notebook ran. rnnkit's gain comes
# from running the whole sequence in one call: the input products for all time steps are one
# large matrix product, the gates are computed in fused SIMD loops without temporaries, and
# backward does the same in reverse.
#
# ## A whole model, changed by one import
#
# The course's captioning-style language model is made of the same pieces: a word embedding,
# a recurrent layer, an affine map at every step and a softmax loss over the steps. Here it
# learns to continue the characters of a docstring that ships with Python, trained for a few
# steps of plain gradient descent, once with NumPy cells and once with `rnnkit.dropin`.

# %%
import json  # noqa: E402

text = " ".join(json.__doc__.split())[:600]
chars = sorted(set(text))
ids = np.array([chars.index(ch) for ch in text])
seq_len, V, E, Hm = 30, len(chars), 16, 64
windows = np.stack([ids[i:i + seq_len + 1] for i in range(0, len(ids) - seq_len - 1, 10)])
print(f"{len(text)} characters, {V} distinct, {len(windows)} windows of {seq_len}")


def train(impl, steps=25, lr=0.5):
    """Gradient descent on the windows; impl holds the six functions by name."""
    r = np.random.default_rng(42)
    W_embed = r.standard_normal((V, E)) * 0.1
    Wx = r.standard_normal((E, 4 * Hm)) / np.sqrt(E)
    Wh = r.standard_normal((Hm, 4 * Hm)) / np.sqrt(Hm)
    b = np.zeros(4 * Hm)
    W_out, b_out = r.standard_normal((Hm, V)) / np.sqrt(Hm), np.zeros(V)
    h0 = np.zeros((len(windows), Hm))
    inputs, targets = windows[:, :-1], windows[:, 1:]
    mask = np.ones(targets.shape, dtype=bool)
    losses = []
    for _ in range(steps):
        x, c_embed = impl["word_embedding_forward"](inputs, W_embed)
        h, c_lstm = impl["lstm_forward"](x, h0, Wx, Wh, b)
        scores, c_out = impl["temporal_affine_forward"](h, W_out, b_out)
        loss, dscores = impl["temporal_softmax_loss"](scores, targets, mask)
        dh, dW_out, db_out = impl["temporal_affine_backward"](dscores, c_out)
        dx, _, dWx, dWh, db = impl["lstm_backward"](dh, c_lstm)
        dW_embed = impl["word_embedding_backward"](dx, c_embed)
        for p, g in [(W_embed, dW_embed), (Wx, dWx), (Wh, dWh), (b, db), (W_out, dW_out),
                     (b_out, db_out)]:
            p -= lr * g / seq_len
        losses.append(loss / seq_len)
    return np.array(losses)


# %% [markdown]
# The NumPy versions of the embedding, the temporal affine map and the loss are short; they
# are written here too, so that the first run uses no rnnkit code at all.

# %%
def np_word_embedding_forward(x, W):
    return W[x], (x, W.shape)


def np_word_embedding_backward(dout, cache):
    x, shape = cache
    dW = np.zeros(shape)
    np.add.at(dW, x, dout)
    return dW


def np_temporal_affine_forward(x, w, b):
    return x @ w + b, (x, w)


def np_temporal_affine_backward(dout, cache):
    x, w = cache
    return dout @ w.T, np.einsum("ntd,ntm->dm", x, dout), dout.sum(axis=(0, 1))


def np_temporal_softmax_loss(x, y, mask):
    N = x.shape[0]
    shifted = x - x.max(axis=2, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
    picked = np.take_along_axis(log_p, y[..., None], axis=2)[..., 0]
    loss = -np.sum(picked * mask) / N
    dx = np.exp(log_p)
    np.put_along_axis(dx, y[..., None], np.take_along_axis(dx, y[..., None], axis=2) - 1, axis=2)
    return loss, dx * mask[..., None] / N


plain = {"word_embedding_forward": np_word_embedding_forward,
         "word_embedding_backward": np_word_embedding_backward,
         "temporal_affine_forward": np_temporal_affine_forward,
         "temporal_affine_backward": np_temporal_affine_backward,
         "temporal_softmax_loss": np_temporal_softmax_loss,
         "lstm_forward": numpy_impl["lstm_forward"], "lstm_backward": numpy_impl["lstm_backward"]}

import rnnkit.dropin  # noqa: E402

fast = {name: getattr(rnnkit.dropin, name) for name in plain}

start = time.perf_counter()
losses_np = train(plain)
time_np = time.perf_counter() - start
start = time.perf_counter()
losses_rk = train(fast)
time_rk = time.perf_counter() - start

print(f"loss per character: {losses_np[0]:.3f} -> {losses_np[-1]:.3f} (NumPy), "
      f"{losses_rk[0]:.3f} -> {losses_rk[-1]:.3f} (rnnkit)")
print(f"largest difference between the two loss curves: {np.max(np.abs(losses_np - losses_rk)):.1e}")
print(f"training time: NumPy {time_np:.2f} s, rnnkit {time_rk:.2f} s (x{time_np / time_rk:.1f})")
assert np.allclose(losses_np, losses_rk, rtol=1e-9, atol=0)
assert losses_rk[-1] < losses_rk[0]

# %% [markdown]
# Both runs follow the same loss curve, step for step: the training loop did not change, only
# where its functions came from.
