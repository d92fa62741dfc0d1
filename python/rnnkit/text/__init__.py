"""rnnkit.text: from raw texts to bag-of-words matrices and to padded id sequences.

One pipeline, pure Python + NumPy/SciPy: ``normalize`` -> ``tokenize`` (stop words, n-grams)
-> ``Vocabulary`` / ``to_sequences`` for RNNs (``cooccurrence_vectors``: word vectors from the
corpus itself), or ``BagOfWords`` for document-term matrices.
Full documentation: docs/text.md.
"""
from .bow import BagOfWords, NotFittedError
from .cooccurrence import cooccurrence_matrix, cooccurrence_vectors
from .normalize import normalize
from .stopwords import english_stop_words
from .sequences import to_sequences
from .tokenize import Tokenizer, tokenize
from .vocabulary import Vocabulary

__all__ = ["normalize", "english_stop_words", "Tokenizer", "tokenize", "Vocabulary", "to_sequences",
           "BagOfWords", "NotFittedError", "cooccurrence_matrix", "cooccurrence_vectors"]
