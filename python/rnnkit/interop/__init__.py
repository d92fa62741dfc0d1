"""rnnkit.interop: exchange models with other frameworks (docs/persistence.md).

PyTorch (``rnnkit.interop.pytorch``): ``from_torch``, ``to_torch``, ``load_torch_state_dict``
and the state conversions ``states_from_torch`` / ``states_to_torch``. Importing this package
never imports torch: the functions that need it import it when called (ImportError saying so
when it is missing); ``load_torch_state_dict`` and the state conversions also take NumPy arrays.
"""
from . import pytorch
from .pytorch import (from_torch, load_torch_state_dict, states_from_torch, states_to_torch,
                      to_torch)

__all__ = ["pytorch", "from_torch", "to_torch", "load_torch_state_dict", "states_from_torch",
           "states_to_torch"]
