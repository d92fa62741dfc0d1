"""BagOfWords: DTM/TDM, weighting, pruning, fixed vocabularies, scikit-learn parity, bad input."""
import numpy as np
import pytest
import scipy.sparse as sp

from rnnkit.text import BagOfWords, NotFittedError, Tokenizer, Vocabulary

DOCS = [
    "The cat sat on the mat.",
    "The dog ate the cat's dinner; the cat ran!",
    "Dogs and cats: a love-hate story.",
    "Nothing to see here",
    "",
]


@pytest.fixture(scope="module")
def real_docs():
    topics = pytest.importorskip("pydoc_data.topics").topics
    return [p for k in sorted(topics) for p in topics[k].split("\n\n") if p.strip()]


def test_counts_by_hand():
    bow = BagOfWords()
    X = bow.fit_transform(DOCS[:2])
    assert sp.isspmatrix_csr(X) and X.dtype == np.int64
    names = list(bow.get_feature_names_out())
    assert names == sorted(names) == ["ate", "cat", "cat's", "dinner", "dog", "mat", "on", "ran", "sat", "the"]
    assert bow.vocabulary_ == {t: j for j, t in enumerate(names)}
    dense = X.toarray()
    assert dense[0].tolist() == [0, 1, 0, 0, 0, 1, 1, 0, 1, 2]
    assert dense[1].tolist() == [1, 1, 1, 1, 1, 0, 0, 1, 0, 3]
    assert X.has_canonical_format


def test_dtm_and_tdm_layouts():
    bow = BagOfWords()
    X = bow.fit_transform(DOCS)
    T = bow.term_document(X)
    assert X.shape == (5, len(bow.vocabulary_))  # DTM: documents in rows
    assert T.shape == (len(bow.vocabulary_), 5)  # TDM: terms in rows
    assert sp.isspmatrix_csr(T)
    np.testing.assert_array_equal(T.toarray(), X.toarray().T)
    with pytest.raises(ValueError, match="columns but the vocabulary has"):
        bow.term_document(X[:, :3])
    with pytest.raises(TypeError, match="2-D document-term matrix"):
        bow.term_document([[1, 2]])


def test_binary_tfidf_and_norms():
    X = BagOfWords(weighting="binary").fit_transform(DOCS).toarray()
    assert set(np.unique(X)) == {0, 1}
    X = BagOfWords(weighting="count", norm="l1").fit_transform(DOCS).toarray()
    np.testing.assert_allclose(X[:4].sum(axis=1), 1.0)
    np.testing.assert_array_equal(X[4], 0.0)  # an empty document stays a zero row
    bow = BagOfWords(weighting="tfidf", smooth_idf=False)
    X = bow.fit_transform(DOCS).toarray()
    np.testing.assert_allclose(np.linalg.norm(X[:4], axis=1), 1.0)
    df = bow.document_frequency_
    np.testing.assert_allclose(bow.idf_, np.log(5 / df) + 1)
    assert BagOfWords(weighting="tfidf", norm=None).fit_transform(DOCS).max() > 1.0


def test_pruning():
    docs = ["a b c", "a b", "a d", "a e e e e"]
    bow = BagOfWords(min_df=2)
    bow.fit(docs)
    assert list(bow.get_feature_names_out()) == ["a", "b"]
    bow = BagOfWords(max_df=0.5).fit(docs)
    assert list(bow.get_feature_names_out()) == ["b", "c", "d", "e"]
    bow = BagOfWords(max_df=2).fit(docs)
    assert list(bow.get_feature_names_out()) == ["b", "c", "d", "e"]
    bow = BagOfWords(max_features=2).fit(docs)
    assert list(bow.get_feature_names_out()) == ["a", "e"]
    bow = BagOfWords(max_features=3).fit(docs)  # tie b/c/d at 1-2 counts: b has 2
    assert list(bow.get_feature_names_out()) == ["a", "b", "e"]
    with pytest.raises(ValueError, match="no terms remain"):
        BagOfWords(min_df=3, max_df=3).fit(docs)
    with pytest.raises(ValueError, match="fewer documents than min_df"):
        BagOfWords(min_df=3, max_df=2).fit(docs)


def test_transform_ignores_unseen_terms():
    bow = BagOfWords().fit(["alpha beta", "beta gamma"])
    X = bow.transform(["zeta", "beta beta zeta alpha", "", "omega"])
    assert X.toarray().tolist() == [[0, 0, 0], [1, 2, 0], [0, 0, 0], [0, 0, 0]]


def test_fixed_vocabularies():
    expected = [[1, 0, 2], [0, 1, 0]]
    for vocab in (["cat", "dog", "the"], {"the": 2, "cat": 0, "dog": 1}):
        bow = BagOfWords(vocabulary=vocab)
        assert bow.fit_transform(["the cat the mouse", "dog"]).toarray().tolist() == expected
        assert list(bow.get_feature_names_out()) == ["cat", "dog", "the"]
    v = Vocabulary.from_texts(["The cat, the cat and a dog."], stop_words=["a", "and"])
    bow = BagOfWords(vocabulary=v)
    X = bow.fit_transform(["A dog and the cats' cat"])
    names = list(bow.get_feature_names_out())
    assert names == v.tokens[v.n_specials:] == ["the", "cat", "dog"]
    assert X.toarray().tolist() == [[1, 1, 1]]
    with pytest.raises(ValueError, match="leave stop_words at the default"):
        BagOfWords(vocabulary=v, stop_words="english").fit(["x"])
    with pytest.raises(ValueError, match="duplicate"):
        BagOfWords(vocabulary=["a", "a"]).fit(["a"])
    with pytest.raises(ValueError, match="columns 0..n-1"):
        BagOfWords(vocabulary={"a": 0, "b": 2}).fit(["a"])
    with pytest.raises(ValueError, match="vocabulary is empty"):
        BagOfWords(vocabulary=[]).fit(["a"])
    with pytest.raises(TypeError, match="vocabulary terms must be str"):
        BagOfWords(vocabulary=["a", 1]).fit(["a"])


def test_bad_input():
    with pytest.raises(TypeError, match=r"raw_documents\[1\] must be a str"):
        BagOfWords().fit(["ok", 3])
    with pytest.raises(TypeError, match=r"raw_documents\[0\] must be a str"):
        BagOfWords().fit([None])
    with pytest.raises(TypeError, match="single str"):
        BagOfWords().fit("one document")
    with pytest.raises(ValueError, match="raw_documents is empty"):
        BagOfWords().fit([])
    with pytest.raises(ValueError, match="empty vocabulary"):
        BagOfWords(stop_words="english").fit(["the and of", "", "!!! 123"])
    with pytest.raises(NotFittedError, match="not fitted"):
        BagOfWords().transform(["x"])
    with pytest.raises(NotFittedError):
        BagOfWords().get_feature_names_out()
    with pytest.raises(ValueError, match="weighting"):
        BagOfWords(weighting="bm25").fit(["x"])
    with pytest.raises(ValueError, match="norm"):
        BagOfWords(norm="max").fit(["x"])
    with pytest.raises(ValueError, match="sublinear_tf"):
        BagOfWords(sublinear_tf=True).fit(["x"])
    with pytest.raises(ValueError, match="min_df"):
        BagOfWords(min_df=1.5).fit(["x"])
    with pytest.raises(TypeError, match="max_df"):
        BagOfWords(max_df="all").fit(["x"])
    with pytest.raises(ValueError, match="max_features"):
        BagOfWords(max_features=0).fit(["x"])
    with pytest.raises(ValueError, match="ngram_range"):
        BagOfWords(ngram_range=(3, 1)).fit(["x"])


def test_params_protocol():
    bow = BagOfWords(weighting="tfidf", min_df=2)
    params = bow.get_params()
    assert params["weighting"] == "tfidf" and params["min_df"] == 2 and params["norm"] == "auto"
    assert bow.set_params(min_df=1) is bow and bow.min_df == 1
    with pytest.raises(ValueError, match="invalid parameter"):
        bow.set_params(colour="red")
    assert "weighting='tfidf'" in repr(bow)


def test_callable_and_char_analyzers():
    X = BagOfWords(analyzer=str.split).fit_transform(["A a b"])
    assert X.toarray().tolist() == [[1, 1, 1]]
    bow = BagOfWords(analyzer="char_wb", ngram_range=(2, 2))
    bow.fit(["ab"])
    assert list(bow.get_feature_names_out()) == [" a", "ab", "b "]


# ---------------------------------------------------------------- scikit-learn parity

SETTINGS = [
    dict(),
    dict(stop_words="english", ngram_range=(1, 2)),
    dict(min_df=2, max_df=0.3),
    dict(stop_words="english", ngram_range=(2, 3), min_df=2, strip_accents="unicode"),
    dict(analyzer="char_wb", ngram_range=(2, 4), min_df=3),
]
TOKEN_KEYS = ("stop_words", "ngram_range", "analyzer", "strip_accents")


def _split(settings):
    tok = Tokenizer(**{k: v for k, v in settings.items() if k in TOKEN_KEYS})
    rest = {k: v for k, v in settings.items() if k not in TOKEN_KEYS}
    return tok, rest


@pytest.mark.parametrize("settings", SETTINGS)
def test_counts_equal_sklearn(real_docs, settings):
    text = pytest.importorskip("sklearn.feature_extraction.text")
    if settings.get("analyzer") == "char_wb":
        real_docs = real_docs[:600]  # character n-grams are many; a slice keeps the test fast
    tok, rest = _split(settings)
    ours = BagOfWords(**settings)
    X = ours.fit_transform(real_docs)
    ref = text.CountVectorizer(analyzer=tok, **rest)
    Y = ref.fit_transform(real_docs)
    assert list(ours.get_feature_names_out()) == list(ref.get_feature_names_out())
    assert X.shape == Y.shape and (X != Y).nnz == 0
    new = ["Tuples and lists, and the with statement", "zzz unknown"]
    assert (ours.transform(new) != ref.transform(new)).nnz == 0
    Xb = BagOfWords(weighting="binary", **settings).fit_transform(real_docs)
    Yb = text.CountVectorizer(analyzer=tok, binary=True, **rest).fit_transform(real_docs)
    assert (Xb != Yb).nnz == 0


@pytest.mark.parametrize("settings", SETTINGS[:3])
@pytest.mark.parametrize("smooth_idf", [True, False])
@pytest.mark.parametrize("sublinear_tf", [True, False])
@pytest.mark.parametrize("norm", ["l2", "l1", None])
def test_tfidf_equals_sklearn(real_docs, settings, smooth_idf, sublinear_tf, norm):
    text = pytest.importorskip("sklearn.feature_extraction.text")
    tok, rest = _split(settings)
    kw = dict(smooth_idf=smooth_idf, sublinear_tf=sublinear_tf, norm=norm)
    ours = BagOfWords(weighting="tfidf", **settings, **kw)
    X = ours.fit_transform(real_docs)
    ref = text.TfidfVectorizer(analyzer=tok, **rest, **kw)
    Y = ref.fit_transform(real_docs)
    np.testing.assert_allclose(ours.idf_, ref.idf_, rtol=0, atol=1e-12)
    assert X.shape == Y.shape
    assert abs(X - Y).max() <= 1e-12
    new = real_docs[:5] + ["", "unseen words only qqq"]
    assert abs(ours.transform(new) - ref.transform(new)).max() <= 1e-12


def test_max_features_equals_sklearn_without_ties(real_docs):
    text = pytest.importorskip("sklearn.feature_extraction.text")
    totals = np.sort(np.asarray(BagOfWords().fit_transform(real_docs).sum(axis=0)).ravel())[::-1]
    # the first cut >= 200 without a tie, so that the choice is unambiguous (tie order differs)
    k = next(k for k in range(200, len(totals)) if totals[k - 1] != totals[k])
    ours = BagOfWords(max_features=k).fit(real_docs)
    ref = text.CountVectorizer(analyzer=Tokenizer(), max_features=k).fit(real_docs)
    assert len(ours.vocabulary_) == k
    assert ours.vocabulary_ == ref.vocabulary_


def test_fixed_vocabulary_equals_sklearn(real_docs):
    text = pytest.importorskip("sklearn.feature_extraction.text")
    terms = ["with", "tuple", "list", "zzz-never", "the", "class"]
    X = BagOfWords(vocabulary=terms).fit_transform(real_docs)
    Y = text.CountVectorizer(analyzer=Tokenizer(), vocabulary=terms).fit_transform(real_docs)
    assert (X != Y).nnz == 0


def test_unmatchable_stop_words_warn_in_bag_of_words():
    with pytest.warns(UserWarning, match=r"can never match.*'Cat'"):
        bow = BagOfWords(stop_words=["Cat", "dog"]).fit(["cat dog bird"])
    assert list(bow.get_feature_names_out()) == ["bird", "cat"]


def test_readme_example():
    texts = ["The cat sat on the mat.", "The dog ate my homework!", "Cats and dogs, naïvely."]
    bow = BagOfWords(stop_words="english", weighting="tfidf")
    X = bow.fit_transform(texts)
    assert X.shape == (3, 9) and list(bow.get_feature_names_out()[:4]) == ["ate", "cat", "cats", "dog"]
    assert bow.term_document(X).shape == (9, 3)
    assert "naïvely" in bow.vocabulary_
