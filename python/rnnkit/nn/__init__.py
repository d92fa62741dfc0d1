"""rnnkit.nn: layers with explicit forward/backward over the fused C++ kernels (no autograd).

See docs/nn.md for the contract (shapes, parameter naming, gradient accumulation, state dicts,
randomness) and the options of the recurrent layers.
"""
from .heads import LastStep, MaxPool, MeanPool
from .layers import Dropout, Embedding, Linear
from .module import Module, Sequential
from .recurrent import GRU, LSTM, RNN

__all__ = ["Module", "Sequential", "Linear", "Embedding", "Dropout", "LastStep", "MeanPool",
           "MaxPool", "RNN", "LSTM", "GRU"]
