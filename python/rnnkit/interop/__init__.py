"""rnnkit.interop: exchange models with other frameworks (docs/persistence.md).

PyTorch (``rnnkit.interop.pytorch``): ``from_torch``, ``to_torch``, ``load_torch_state_dict``
and the state conversions ``states_from_torch`` / ``states_to_torch``.

Keras 3 (``rnnkit.interop.keras``): ``from_keras`` and ``to_keras`` for SimpleRNN, LSTM, GRU,
Bidirectional, Embedding and Dense.

Importing this package imports neither torch nor Keras: the functions that need one import it
when called (ImportError saying so when it is missing); ``load_torch_state_dict`` and the
state conversions also take NumPy arrays. The Keras functions set ``KERAS_BACKEND`` to
``"torch"`` when it is unset and Keras is not imported yet (Keras fixes its backend at its
first import; see rnnkit.interop.keras).
"""
from . import keras, pytorch
from .keras import from_keras, to_keras
from .pytorch import (from_torch, load_torch_state_dict, states_from_torch, states_to_torch,
                      to_torch)

__all__ = ["pytorch", "keras", "from_torch", "to_torch", "load_torch_state_dict",
           "states_from_torch", "states_to_torch", "from_keras", "to_keras"]
