"""rnnkit.interop: exchange models with other frameworks (docs/persistence.md).

PyTorch (``rnnkit.interop.pytorch``): ``from_torch``, ``to_torch``, ``load_torch_state_dict``
and the state conversions ``states_from_torch`` / ``states_to_torch``. Importing this package
never imports torch: the functions that need it import it when called (ImportError saying so
when it is missing); ``load_torch_state_dict`` and the state conversions also take NumPy arrays.

ONNX (``rnnkit.interop.onnx``): ``to_onnx`` (recurrent layers, SequenceClassifier,
LanguageModel) and ``from_onnx`` (ONNX RNN/LSTM/GRU nodes as rnnkit.nn layers). The onnx package
is imported only when they are called (ImportError saying ``pip install "rnnkit[onnx]"``).
"""
from . import onnx, pytorch
from .onnx import from_onnx, to_onnx
from .pytorch import (from_torch, load_torch_state_dict, states_from_torch, states_to_torch,
                      to_torch)

__all__ = ["pytorch", "from_torch", "to_torch", "load_torch_state_dict", "states_from_torch",
           "states_to_torch"]
__all__ += ["onnx", "to_onnx", "from_onnx"]
