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
# # Why LSTMs
#
# Backpropagation through time sends the loss gradient from the last step back to the first,
# multiplying it at every step by the Jacobian of one step. For a vanilla RNN,
# `h_t = tanh(x_t Wx + h_{t-1} Wh + b)`, that factor is `diag(1 - h_t^2) Wh^T`: when its size
# stays below 1 the gradient shrinks geometrically with the distance (it **vanishes**), above 1
# it grows (it **explodes**). Either way, the network cannot learn from what it saw many steps
# ago. The LSTM's cell state `c_t = f_t * c_{t-1} + i_t * g_t` carries the gradient back
# multiplied only by the forget gate; the GRU's update gate does the same.
#
# This notebook measures it with `rnnkit.diagnostics.gradient_norms`, which returns
# `||dLoss/dh_t||` for every step `t`, on a task that needs a long memory.

# %%
# %matplotlib inline
import time

import numpy as np

import rnnkit
from rnnkit import nn
from rnnkit.diagnostics import gradient_norms, plot_gradient_norms
from rnnkit.train import SGD, Trainer, clip_grad_norm, global_norm, mse

# %% [markdown]
# ## The adding problem
#
# Each step carries a random number and a marker; two steps are marked, one in each half, and
# the target is the sum of the two marked numbers. A network that forgets the first half can
# do no better than predicting the average sum.

# %%
def adding_problem(n, steps, rng):
    x = np.zeros((n, steps, 2), np.float32)
    x[:, :, 0] = rng.random((n, steps))
    rows = np.arange(n)
    first, second = rng.integers(0, steps // 2, n), rng.integers(steps // 2, steps, n)
    x[rows, first, 1] = x[rows, second, 1] = 1.0
    y = x[rows, first, 0] + x[rows, second, 0]
    return x, y[:, None].astype(np.float32)


T, HIDDEN = 40, 32
rng = np.random.default_rng(0)
X, Y = adding_problem(2000, T, rng)
Xv, Yv = adding_problem(400, T, rng)
baseline = float(np.mean((Yv - Y.mean()) ** 2))
print(f"T = {T}; predicting the mean sum gives validation MSE {baseline:.3f}")


def network(cell, scale=1.0, seed=0, **options):
    """A recurrent layer reading the sequence, then a linear map of its last output."""
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](
        2, HIDDEN, return_sequences=False, seed=seed, **options)
    for name, p in layer.parameters().items():
        if name.endswith("Wh"):
            p *= scale                      # to see what the size of Wh does
    return nn.Sequential(rnn=layer, fc=nn.Linear(HIDDEN, 1, seed=seed + 1))


# %% [markdown]
# ## Gradients at initialisation
#
# The size of the recurrent weights decides the fate of the RNN's gradient. rnnkit starts `Wh`
# orthogonal; scaled by 0.5 the gradient vanishes, by 3 it explodes. The LSTM starts with its
# forget-gate bias at 1, so its forget gates are mostly open.

# %%
probe = (Xv[:200], Yv[:200])
initial = {}
for label, cell, scale in [("RNN, Wh x0.5", "rnn", 0.5), ("RNN, Wh orthogonal", "rnn", 1.0),
                           ("RNN, Wh x3", "rnn", 3.0), ("LSTM", "lstm", 1.0), ("GRU", "gru", 1.0)]:
    norms = gradient_norms(network(cell, scale), *probe, loss="mse")[0]
    initial[label] = norms
    print(f"{label:20} ||dL/dh_0|| / ||dL/dh_{T - 1}|| = {norms[0] / norms[-1]:.1e}")
plot_gradient_norms(initial, title="at initialisation")

# %%
assert initial["RNN, Wh x0.5"][0] / initial["RNN, Wh x0.5"][-1] < 1e-6
assert initial["RNN, Wh x3"][0] > initial["RNN, Wh x3"][-1]
assert initial["LSTM"][0] / initial["LSTM"][-1] > 1e3 * initial["RNN, Wh x0.5"][0] / initial["RNN, Wh x0.5"][-1]

# %% [markdown]
# ## Training: who learns the task?
#
# The three cells, same size, same optimiser (Adam with the gradient norm clipped at 1), the
# same number of epochs. Then the same measurement as above on the trained networks.

# %%
trained, results = {}, {}
for cell in ["rnn", "lstm", "gru"]:
    model = network(cell)
    start = time.perf_counter()
    history = Trainer(model, loss="mse", optimizer="adam", lr=5e-3, clip_norm=1.0, seed=0,
                      quiet=True).fit((X, Y), val=(Xv, Yv), epochs=30, batch_size=50)
    results[cell] = history["val_loss"][-1]
    trained[f"{cell.upper()}, val MSE {results[cell]:.3f}"] = gradient_norms(model, *probe, loss="mse")[0]
    print(f"{cell.upper():5} validation MSE {history['val_loss'][0]:.3f} after the first epoch, "
          f"{results[cell]:.3f} after the last ({time.perf_counter() - start:.1f} s)")
print(f"(the mean predictor: {baseline:.3f})")
plot_gradient_norms(trained, title="after training")

# %%
assert min(results["lstm"], results["gru"]) < 0.5 * results["rnn"]

# %% [markdown]
# ## Exploding gradients and clipping
#
# Clipping rescales the whole gradient when its norm exceeds a threshold. It does nothing for
# vanishing gradients, but it keeps one huge gradient from throwing the weights far away. Plain
# SGD on the RNN with `Wh x3`, batch by batch, with and without clipping at norm 1:

# %%
def sgd_run(model, clip, batches=60, batch_size=50, lr=0.05):
    opt = SGD(model.parameters(), lr=lr)
    losses, norms = [], []
    for k in range(batches):
        i = (k * batch_size) % len(X)
        model.zero_grad()
        loss, grad, _ = mse(model.forward(X[i:i + batch_size], training=True), Y[i:i + batch_size])
        losses.append(float(loss))
        if not np.isfinite(loss):
            break
        model.backward(grad)
        grads = model.grads()
        norms.append(clip_grad_norm(grads, clip) if clip else global_norm(grads))
        opt.step(grads)
    return np.array(losses), np.array(norms)


runs = {}
for clip in [None, 1.0]:
    losses, norms = sgd_run(network("rnn", 3.0), clip)
    runs[clip] = losses
    print(f"clip {str(clip):4}: largest gradient norm {norms.max():.1e}, loss {losses[0]:.2f} -> "
          f"{losses[-1]:.3g} after {len(losses)} batches")

# %%
assert np.isfinite(runs[1.0]).all()
assert runs[None].max() > 100 * runs[1.0].max()

# %% [markdown]
# ## Depth and skip connections
#
# Stacking layers adds a second direction for the gradient to travel: down through the
# layers. Here each layer is 32 wide and reads 32 features, and we measure how much gradient
# reaches the **input** of the stack at every step (the layer's `backward` returns it) for
# stacks of 1, 4 and 8 tanh RNN layers, without and with residual connections
# (`skip="residual"`: each layer adds its input to its output, so the gradient also has a path
# that skips the layer).

# %%
x_deep = np.random.default_rng(1).standard_normal((64, T, HIDDEN)).astype(np.float32)


def input_gradient(num_layers, skip):
    layer = nn.RNN(HIDDEN, HIDDEN, num_layers, skip=skip, return_sequences=False, seed=0)
    for name, p in layer.parameters().items():
        if name.endswith("Wh"):
            p *= 0.8
    out = layer.forward(x_deep)
    dx = layer.backward(np.full_like(out, 1 / np.sqrt(HIDDEN)))
    return np.linalg.norm(dx, axis=2).mean(axis=0)          # (T,)


deep = {}
for num_layers in [1, 4, 8]:
    for skip in [None, "residual"]:
        deep[f"{num_layers} layer(s), {skip or 'no skip'}"] = input_gradient(num_layers, skip)
for label, g in deep.items():
    print(f"{label:26} ||dL/dx_t|| at the last step {g[-1]:.1e}, at the first {g[0]:.1e}")
fig = plot_gradient_norms(deep, title="gradient reaching the input of a stack (Wh x0.8)")
fig.axes[0].set_ylabel("||dLoss / dx_t||")
fig

# %%
assert deep["8 layer(s), no skip"][-1] < deep["1 layer(s), no skip"][-1]
assert deep["8 layer(s), residual"][-1] > deep["8 layer(s), no skip"][-1]
assert max(g[0] for g in deep.values()) < 1e-3 * min(g[-1] for g in deep.values())

# %% [markdown]
# At the last step, without skip connections every extra layer multiplies the gradient by
# another Jacobian, and the deeper stacks pass less of it down to the input; with the residual
# path the gradient reaching the input does not shrink with depth. Far back in time it is tiny
# in every stack: depth and skip connections act across layers, not across time. Along time
# the additive path is the LSTM's cell state (and the GRU's interpolation with the previous
# state): the gradient follows it without being squashed at every step, which is what the
# training above showed.

# %%
print(f"threads: {rnnkit.get_num_threads()}")
