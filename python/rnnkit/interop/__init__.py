"""rnnkit.interop: exchange models with other frameworks (docs/persistence.md).

PyTorch (``rnnkit.interop.pytorch``): ``from_torch``, ``to_torch``, ``load_torch_state_dict``
and the state conversions ``states_from_torch`` / ``states_to_torch``.

Keras 3 (``rnnkit.interop.keras``): ``from_keras`` and ``to_keras`` for SimpleRNN, LSTM, GRU,
Bidirectional, Embedding and Dense.

ONNX (``rnnkit.interop.onnx``): ``to_onnx`` (recurrent layers, SequenceClassifier,
LanguageModel) and ``from_onnx`` (ONNX RNN/LSTM/GRU nodes as rnnkit.nn layers).

Importing this package imports neither torch, Keras nor onnx: the functions that need one import
it when called (ImportError saying what to install when it is missing);
``load_torch_state_dict`` and the state conversions also take NumPy arrays. The Keras functions
set ``KERAS_BACKEND`` to ``"torch"`` when it is unset and Keras is not imported yet (Keras fixes
its backend at its first import; see rnnkit.interop.keras).
"""
from . import keras, onnx, pytorch
from .keras import from_keras, to_keras
from .onnx import from_onnx, to_onnx
from .pytorch import (from_torch, load_torch_state_dict, states_from_torch, states_to_torch,
                      to_torch)

__all__ = ["pytorch", "keras", "onnx", "from_torch", "to_torch", "load_torch_state_dict",
           "states_from_torch", "states_to_torch", "from_keras", "to_keras", "to_onnx",
           "from_onnx"]
