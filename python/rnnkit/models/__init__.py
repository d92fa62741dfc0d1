"""rnnkit.models: ready-made networks and estimators.

- ``SequenceClassifier``: token ids -> embedding -> recurrent stack -> pooling -> class logits.
- ``LanguageModel``: next-token prediction (character or word level) with ``generate``.
- ``MLPClassifier``: feed-forward network on feature vectors (the bag-of-words baseline).
- ``TextClassifier`` / ``BagOfWordsClassifier``: scikit-learn style estimators on raw texts.
- helpers: ``lm_windows``, ``char_vocabulary``, ``unigram_perplexity``.

Documentation: docs/models.md.
"""
from .estimators import BagOfWordsClassifier, TextClassifier
from .networks import (LanguageModel, MLPClassifier, SequenceClassifier, char_vocabulary, lm_windows,
                       unigram_perplexity)
from .seq2seq import LuongAttention, Seq2Seq

__all__ = ["SequenceClassifier", "LanguageModel", "MLPClassifier", "TextClassifier", "BagOfWordsClassifier",
           "lm_windows", "char_vocabulary", "unigram_perplexity"]
__all__ += ["Seq2Seq", "LuongAttention"]  # docs/seq2seq.md
