"""rnnkit.train: losses with gradients, optimisers, L1/L2 penalties by parameter kind,
gradient clipping, learning-rate schedules and the training loop (Trainer / fit) with
bucketed batches, progress bar, early stopping, atomic checkpoints and exact resume.
Documentation: docs/train.md."""
from .losses import (MSE, BinaryCrossEntropy, CrossEntropy, binary_cross_entropy_with_logits, cross_entropy,
                     get_loss, log_softmax, mse, softmax)
from .optim import (SGD, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm, clip_grad_value, get_optimizer,
                    global_norm)
from .regularizers import Regularizer, param_kind
from .data import DataLayout
from .schedules import CosineLR, ReduceLROnPlateau, Schedule, StepLR
from .trainer import (EarlyStopping, History, NonFiniteLossError, Trainer, fit, load_checkpoint, predict,
                      save_checkpoint)

__all__ = ["cross_entropy", "binary_cross_entropy_with_logits", "mse", "log_softmax", "softmax",
           "CrossEntropy", "BinaryCrossEntropy", "MSE", "get_loss",
           "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "get_optimizer",
           "clip_grad_norm", "clip_grad_value", "global_norm",
           "Regularizer", "param_kind",
           "Schedule", "StepLR", "CosineLR", "ReduceLROnPlateau",
           "Trainer", "fit", "predict", "DataLayout", "History", "EarlyStopping", "NonFiniteLossError",
           "save_checkpoint", "load_checkpoint"]
