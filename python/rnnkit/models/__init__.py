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
from .forecast import Forecaster, ForecastNet, SeriesScaler, forecast_errors, make_windows, naive_forecast
from .tagger import SequenceTagger, tagging_loss
from .vec2seq import VectorToSequence

__all__ = ["SequenceClassifier", "LanguageModel", "MLPClassifier", "TextClassifier", "BagOfWordsClassifier",
           "lm_windows", "char_vocabulary", "unigram_perplexity"]
__all__ += ["Seq2Seq", "LuongAttention"]  # docs/seq2seq.md
__all__ += ["VectorToSequence", "SequenceTagger", "tagging_loss", "Forecaster", "ForecastNet", "SeriesScaler",
            "make_windows", "naive_forecast", "forecast_errors"]  # docs/generation.md
