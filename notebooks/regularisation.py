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
# # Regularisation
#
# A network with more parameters than its data can pin down learns the training set by heart:
# its training loss keeps falling while the loss on held-out data stops improving and then
# rises. This notebook overfits a character-level language model on purpose, then tries the
# usual remedies: L1/L2 penalties chosen per kind of weight, dropout on the recurrent
# connections, normalisation inside the recurrence, and early stopping, comparing training
# curves.
#
# The text is the help on Python's keywords and statements that ships with Python
# (`pydoc_data.topics`, what `help("if")` prints): a small piece for training, the next piece
# for validation.

# %%
# %matplotlib inline
import time

import numpy as np
from matplotlib.figure import Figure
from pydoc_data.topics import topics

from rnnkit import nn
from rnnkit.models import char_vocabulary, lm_windows
from rnnkit.plot import plot_history
from rnnkit.train import EarlyStopping, Regularizer, Trainer

text = " ".join(topics[key] for key in sorted(topics))[:14000]
vocab = char_vocabulary(text)
ids = np.array(vocab.encode(list(text)))
X, Y = lm_windows(ids[:10000], 50)            # Y[i] is X[i] shifted by one character
Xv, Yv = lm_windows(ids[10000:], 50)
print(f"{len(vocab)} characters; {X.shape[0]} training and {Xv.shape[0]} validation windows of 50")

# %% [markdown]
# The model: an embedding of each character, an LSTM of 128 units, and a linear map to the
# scores of the next character at every step. Every variant below is trained the same way
# (Adam, 20 epochs, the same seeds); only the regularisation changes.

# %%
def language_model(**lstm_options):
    return nn.Sequential(embed=nn.Embedding(len(vocab), 32, seed=0),
                         rnn=nn.LSTM(32, 128, seed=1, **lstm_options),
                         fc=nn.Linear(128, len(vocab), seed=2))


def train(name, lstm_options=None, epochs=20, **trainer_options):
    model = language_model(**(lstm_options or {}))
    start = time.perf_counter()
    history = Trainer(model, lr=1e-2, seed=0, quiet=True, **trainer_options).fit(
        (X, Y), val=(Xv, Yv), epochs=epochs, batch_size=32)
    best = int(np.argmin(history["val_loss"]))
    print(f"{name:22} best validation loss {history['val_loss'][best]:.3f} at epoch {best + 1}, "
          f"last {history['val_loss'][-1]:.3f}; last training loss {history['loss'][-1]:.3f} "
          f"({time.perf_counter() - start:.1f} s)")
    return model, history


runs = {}
base_model, runs["none"] = train("none")
plot_history(runs["none"], title="no regularisation")

# %%
h = runs["none"]
best = int(np.argmin(h["val_loss"]))
print(f"from epoch {best + 1} to {len(h['loss'])}: training loss {h['loss'][best]:.3f} -> "
      f"{h['loss'][-1]:.3f}, validation loss {h['val_loss'][best]:.3f} -> {h['val_loss'][-1]:.3f}")
assert h["val_loss"][-1] > h["val_loss"][best] and h["loss"][-1] < h["loss"][best]

# %% [markdown]
# The gap between the two curves is the overfitting: past the best epoch the model still
# improves on the text it trains on and gets worse on text it has not seen.
#
# ## L1 and L2 penalties, per kind of weight
#
# A penalty adds `l1 * sum|w| + l2 * sum w^2` to the loss, pulling weights towards zero.
# A recurrent network has kinds of weights with different jobs: the input weights `Wx` (and
# the embedding and output tables), the recurrent weights `Wh` that carry the memory from step
# to step, and the biases. `Regularizer` takes a separate strength for each kind. Here an L2
# penalty on the input-side weights and on the recurrent weights; the `loss` the Trainer
# reports stays the data loss alone (the penalty is in `history["penalty"]`), so the curves
# remain comparable.

# %%
l2_model, runs["L2"] = train("L2 (input, recurrent)",
                             regularizer=Regularizer(input_l2=1e-4, recurrent_l2=1e-4))


def weight_norms(model):
    params = model.parameters()
    return {kind: np.sqrt(sum(float(np.sum(p.astype(np.float64) ** 2))
                              for name, p in params.items() if name.split(".")[-1] == kind))
            for kind in ["Wx", "Wh", "W"]}


for label, model in [("none", base_model), ("L2", l2_model)]:
    print(f"{label:5} weight norms: " + ", ".join(f"{k} {v:.1f}" for k, v in weight_norms(model).items()))

# %% [markdown]
# An L1 penalty pushes many weights to (nearly) zero instead of making them all small. On the
# recurrent weights alone it thins out the memory connections while leaving the input side
# free:

# %%
l1_model, runs["L1 recurrent"] = train("L1 (recurrent only)", epochs=6,
                                       regularizer=Regularizer(recurrent_l1=1e-4))
base_short, _ = train("none, same epochs", epochs=6)
shares = {}
for label, model in [("none", base_short), ("L1 recurrent", l1_model)]:
    p = model.parameters()
    small = {k: float(np.mean(np.abs(p[f"rnn.l0.fwd.{k}"]) < 1e-3)) for k in ["Wx", "Wh"]}
    print(f"{label:13} share of weights below 1e-3 in size: Wx {small['Wx']:.1%}, Wh {small['Wh']:.1%}")
    shares[label] = small
del runs["L1 recurrent"]            # a shorter run; not in the comparison below
assert shares["L1 recurrent"]["Wh"] > 5 * shares["none"]["Wh"]

# %% [markdown]
# ## Recurrent (variational) dropout
#
# Ordinary dropout zeroes random units of a layer's output. On the recurrent connection a new
# mask at every step would erase the memory the network is trying to keep; variational
# dropout draws **one** mask per sequence and applies it to `h_{t-1}` at every step
# (`recurrent_dropout=`). rnnkit applies the mask inside the fused kernel.

# %%
_, runs["recurrent dropout 0.3"] = train("recurrent dropout 0.3", {"recurrent_dropout": 0.3})

# %% [markdown]
# ## Normalisation in the recurrence
#
# Layer normalisation (`norm="layer"`) normalises the input and recurrent pre-activations of
# every step, and the cell state, each with a learned gain. It keeps the scale of the gates
# stable from step to step; it is not a regulariser as such, and here it mostly changes how
# fast the model fits the training text, as the numbers show.

# %%
_, runs["layer norm"] = train("layer norm", {"norm": "layer"})
assert runs["layer norm"]["loss"][-1] < runs["none"]["loss"][-1]

# %% [markdown]
# ## Early stopping
#
# The simplest remedy: watch the validation loss, stop when it has not improved for a few
# epochs (`patience`), and go back to the weights of the best epoch.

# %%
_, runs["early stopping"] = train("early stopping", early_stopping=EarlyStopping(patience=3))
h = runs["early stopping"]
print(f"stopped early: {h.stopped_early}, after {len(h['loss'])} of 20 epochs; the weights kept are "
      f"those of epoch {int(np.argmin(h['val_loss'])) + 1}, validation loss {min(h['val_loss']):.3f} "
      f"(the full run without regularisation: best {min(runs['none']['val_loss']):.3f}, "
      f"last {runs['none']['val_loss'][-1]:.3f})")
assert h.stopped_early

# %% [markdown]
# The run is the same as the first one up to where it stops (same seeds). The patience
# matters: with two epochs instead of three, the same run stops on a small bump of the
# validation curve, before its best epoch.

# %%
_, short = train("early stopping, patience 2", early_stopping=EarlyStopping(patience=2))
print(f"patience 2 stopped after {len(short['loss'])} epochs, best validation loss "
      f"{min(short['val_loss']):.3f}; patience 3: {min(h['val_loss']):.3f}")
assert min(short["val_loss"]) > min(h["val_loss"])

# %% [markdown]
# ## The curves side by side
#
# Validation loss per epoch of every variant (solid), with its training loss (dotted).

# %%
fig = Figure(figsize=(7, 4.2))
ax = fig.add_subplot()
for k, (name, hist) in enumerate(runs.items()):
    color = f"C{k}"
    epochs = np.arange(1, len(hist["loss"]) + 1)
    ax.plot(epochs, hist["val_loss"], color=color, label=name)
    ax.plot(epochs, hist["loss"], color=color, linestyle=":")
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy per character")
ax.set_ylim(top=3.0)
ax.legend()
ax.grid(alpha=0.3)
fig

# %%
print(f"{'':22} best val  last val  last train  gap (last val - last train)")
for name, hist in runs.items():
    print(f"{name:22} {min(hist['val_loss']):8.3f}  {hist['val_loss'][-1]:8.3f}  "
          f"{hist['loss'][-1]:10.3f}  {hist['val_loss'][-1] - hist['loss'][-1]:8.3f}")
gap = {name: hist["val_loss"][-1] - hist["loss"][-1] for name, hist in runs.items()}
assert gap["recurrent dropout 0.3"] < gap["none"] and gap["L2"] < gap["none"]

# %% [markdown]
# The table is this run's: which remedy wins depends on the data, the model size and the
# strengths chosen, which is why they are settings to tune against a validation set. In this
# run the L2 penalty and recurrent dropout narrowed the gap between training and validation
# loss (the last cell checks it), and early stopping kept the best epoch's weights.
