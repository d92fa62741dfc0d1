"""embedding_forward / embedding_backward / most_similar."""
import time

import numpy as np
import pytest

from rnnkit.embedding import EmbeddingCache, embedding_backward, embedding_forward, most_similar
from rnnkit.text import Vocabulary


def _reference_dW(ids, dout, V, skip=None):
    dW = np.zeros((V, dout.shape[-1]), dtype=dout.dtype)
    for i, g in zip(ids.reshape(-1), dout.reshape(-1, dout.shape[-1])):
        if i != skip:
            dW[i] += g
    return dW


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7,), (5, 3), (2, 3, 4)])
def test_forward_backward_match_reference(dtype, shape):
    rng = np.random.default_rng(0)
    V, D = 11, 6
    W = rng.standard_normal((V, D)).astype(dtype)
    ids = rng.integers(0, V, size=shape)
    out, cache = embedding_forward(ids, W)
    assert out.shape == shape + (D,) and out.dtype == dtype
    np.testing.assert_array_equal(out, W[ids])
    dout = rng.standard_normal(shape + (D,)).astype(dtype)
    dW = embedding_backward(dout, cache)
    assert dW.shape == (V, D) and dW.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dW, _reference_dW(ids, dout, V), rtol=tol, atol=tol)
    np.testing.assert_array_equal(dW, embedding_backward(dout, cache))  # deterministic


def test_gradient_is_exact_derivative():
    # loss = sum(out * G) is linear in W, so dW must equal the analytic gradient exactly.
    rng = np.random.default_rng(1)
    W = rng.standard_normal((5, 3))
    ids = np.array([[0, 4, 4], [2, 4, 0]])
    out, cache = embedding_forward(ids, W)
    G = rng.standard_normal(out.shape)
    dW = embedding_backward(G, cache)
    eps = 1e-6
    num = np.zeros_like(W)
    for v in range(5):
        for d in range(3):
            Wp = W.copy()
            Wp[v, d] += eps
            num[v, d] = (np.sum(embedding_forward(ids, Wp)[0] * G) - np.sum(out * G)) / eps
    np.testing.assert_allclose(dW, num, atol=1e-6)
    assert not dW[[1, 3]].any()  # unused ids get zero rows


def test_padding_idx():
    W = np.arange(12, dtype=np.float64).reshape(4, 3) + 1
    ids = np.array([[1, 0], [0, 3]])
    out, cache = embedding_forward(ids, W, padding_idx=0)
    assert not out[ids == 0].any()
    np.testing.assert_array_equal(out[0, 0], W[1])
    dW = embedding_backward(np.ones_like(out), cache)
    assert not dW[0].any() and dW[1].tolist() == [1, 1, 1] and dW[3].tolist() == [1, 1, 1]


def test_non_contiguous_and_empty():
    W = np.asfortranarray(np.random.default_rng(2).standard_normal((6, 4)))
    ids = np.arange(12).reshape(3, 4)[:, ::2] % 6
    out, cache = embedding_forward(ids, W)
    dout = np.ones((6, 3, 4)).transpose(1, 0, 2)[:, :2, :]
    dW = embedding_backward(dout, cache)
    np.testing.assert_allclose(dW, _reference_dW(ids, dout, 6))
    out, cache = embedding_forward(np.zeros((0, 5), dtype=np.int64), W)
    assert out.shape == (0, 5, 4)
    assert not embedding_backward(np.zeros((0, 5, 4)), cache).any()
    out, _ = embedding_forward([], W)
    assert out.shape == (0, 4)


def test_bad_input():
    W = np.zeros((10, 3))
    with pytest.raises(IndexError, match=r"id 12 at position \(1, 2\), out of range for 10"):
        embedding_forward(np.array([[0, 1, 2], [3, 4, 12]]), W)
    with pytest.raises(IndexError, match=r"negative id -3 at position 2"):
        embedding_forward(np.array([0, 1, -3, 11]), W)
    with pytest.raises(TypeError, match=r"ids must be an integer array, got dtype float64"):
        embedding_forward(np.array([0.0, 1.0]), W)
    with pytest.raises(TypeError, match="ids must be an integer array"):
        embedding_forward(np.array([True, False]), W)
    with pytest.raises(TypeError, match="W must be a float32 or float64"):
        embedding_forward([0], np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="W must be 2-D"):
        embedding_forward([0], np.zeros(3))
    with pytest.raises(ValueError, match="padding_idx must be in"):
        embedding_forward([0], W, padding_idx=10)
    with pytest.raises(TypeError, match="padding_idx must be None or an int"):
        embedding_forward([0], W, padding_idx=1.0)
    out, cache = embedding_forward(np.array([[1, 2]]), W)
    with pytest.raises(ValueError, match=r"dout must have shape ids.shape \+ \(D,\)"):
        embedding_backward(np.zeros((2, 3)), cache)
    with pytest.raises(TypeError, match="dout must have W's dtype float64"):
        embedding_backward(out.astype(np.float32), cache)
    with pytest.raises(TypeError, match="cache must be the EmbeddingCache"):
        embedding_backward(out, None)
    assert isinstance(cache, EmbeddingCache)


def test_backward_accumulates_into_out():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((8, 4)).astype(np.float32)
    ids = np.array([[1, 2, 1], [7, 7, 0]])
    out, cache = embedding_forward(ids, W)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    buf = np.ones((8, 4), np.float32)
    res = embedding_backward(dout, cache, out=buf)
    assert res is buf
    np.testing.assert_allclose(buf, 1 + _reference_dW(ids, dout, 8), rtol=1e-6)
    with pytest.raises(ValueError, match=r"out must be a float32 array of shape \(V, D\)"):
        embedding_backward(dout, cache, out=np.zeros((8, 4)))
    with pytest.raises(ValueError, match="C-contiguous"):
        embedding_backward(dout, cache, out=np.zeros((4, 8), np.float32).T)


def test_functional_reexports():
    functional = pytest.importorskip("rnnkit.functional")
    W = np.arange(6.0).reshape(3, 2)
    out, cache = functional.embedding_forward(np.array([2, 0]), W, padding_idx=0)
    np.testing.assert_array_equal(out, [[4.0, 5.0], [0.0, 0.0]])
    np.testing.assert_array_equal(functional.embedding_backward(np.ones((2, 2)), cache), [[0, 0], [0, 0], [1, 1]])


def test_uint_ids_and_large_values():
    W = np.eye(4)
    out, _ = embedding_forward(np.array([3, 0], dtype=np.uint8), W)
    np.testing.assert_array_equal(out, W[[3, 0]])
    with pytest.raises(IndexError, match=f"id {2**63 + 5}"):
        embedding_forward(np.array([2**63 + 5], dtype=np.uint64), W)


def test_most_similar():
    vocab = Vocabulary([["king", "queen", "apple", "pear", "zero"]])
    W = np.zeros((len(vocab), 2))
    W[vocab["king"]] = [1.0, 0.1]
    W[vocab["queen"]] = [0.9, 0.2]
    W[vocab["apple"]] = [0.0, 1.0]
    W[vocab["pear"]] = [0.1, 1.0]
    W[0] = [1.0, 0.1]  # <pad> row identical to king: specials are never returned
    res = most_similar(W, vocab, "king", k=2)
    assert [w for w, _ in res] == ["queen", "pear"]
    expected = np.dot(W[2], W[3]) / np.linalg.norm(W[2]) / np.linalg.norm(W[3])
    assert res[0][1] == pytest.approx(expected, abs=1e-12)
    res = most_similar(W, vocab, np.array([0.0, 1.0]), k=10)
    assert res[0] == ("apple", pytest.approx(1.0))
    assert [w for w, _ in res] == ["apple", "pear", "queen", "king", "zero"]
    assert res[-1][1] == 0.0  # a zero row has cosine 0, not NaN
    res = most_similar(W[2:], ["king", "queen", "apple", "pear", "zero"], "apple", k=1)
    assert res == [("pear", pytest.approx(1.0 / np.sqrt(1.01)))]


def test_most_similar_bad_input():
    vocab = Vocabulary([["a", "b"]])
    W = np.ones((len(vocab), 3))
    with pytest.raises(ValueError, match="W has 5 rows but the vocabulary has 4 tokens"):
        most_similar(np.ones((5, 3)), vocab, "a")
    with pytest.raises(KeyError, match="'zzz' is not in the vocabulary"):
        most_similar(W, vocab, "zzz")
    with pytest.raises(ValueError, match=r"vector of shape \(3,\)"):
        most_similar(W, vocab, np.ones(4))
    with pytest.raises(ValueError, match="zero norm"):
        most_similar(W, vocab, np.zeros(3))
    with pytest.raises(ValueError, match="k must be"):
        most_similar(W, vocab, "a", k=0)


def test_read_only_inputs():
    """ids, W and dout from np.load(mmap_mode="r") / np.frombuffer / np.broadcast_to are
    read-only: the lookup and the scatter-add only read them."""
    rng = np.random.default_rng(5)
    W = rng.standard_normal((9, 4))
    ids = rng.integers(0, 9, size=(3, 5))
    dout = rng.standard_normal((3, 5, 4))
    out_ref, cache_ref = embedding_forward(ids, W, padding_idx=2)
    dW_ref = embedding_backward(dout, cache_ref)
    for a in (W, ids, dout):
        a.setflags(write=False)
    out, cache = embedding_forward(ids, W, padding_idx=2)
    np.testing.assert_array_equal(out, out_ref)
    np.testing.assert_array_equal(embedding_backward(dout, cache), dW_ref)
    # zero strides: one id and one gradient row repeated over the whole batch
    ids_b, dout_b = np.broadcast_to(np.int64(4), (3, 5)), np.broadcast_to(dout[0, 0], (3, 5, 4))
    out, cache = embedding_forward(ids_b, W)
    np.testing.assert_array_equal(out, np.broadcast_to(W[4], (3, 5, 4)))
    np.testing.assert_array_equal(embedding_backward(dout_b, cache),
                                  _reference_dW(np.array(ids_b), np.array(dout_b), 9))


def test_zero_embedding_dim():
    """D = 0 is accepted by the forward, so the backward gives the (V, 0) zero gradient."""
    W = np.zeros((5, 0), np.float32)
    out, cache = embedding_forward(np.array([[1, 2, 4]]), W)
    assert out.shape == (1, 3, 0)
    dW = embedding_backward(np.zeros((1, 3, 0), np.float32), cache)
    assert dW.shape == (5, 0) and dW.dtype == np.float32
    buf = np.zeros((5, 0), np.float32)
    assert embedding_backward(np.zeros((1, 3, 0), np.float32), cache, out=buf) is buf


def test_check_ids_of_a_broadcast_view_reads_only_its_stored_elements():
    """np.broadcast_to can show 10**12 ids held in one int64: the check looks at the memory,
    not the view (timing asserts are avoided elsewhere; this bound is loose on purpose: a
    full scan takes minutes)."""
    from rnnkit._checks import check_ids

    for dtype in (np.int64, np.int32, np.uint8):
        big = np.broadcast_to(dtype(3), (10**6, 10**6))
        start = time.perf_counter()
        ids = check_ids(big, 5)
        assert time.perf_counter() - start < 5
        assert ids.shape == big.shape and ids.dtype == np.int64 and ids[123456, 654321] == 3
    # a bad id is reported at a valid position of the caller's view, holding that id
    rows = np.array([[0, 1, 2, 1], [3, 4, 7, 1], [1, 1, 9, 1]])
    view = np.broadcast_to(rows[:, None, :], (3, 1000, 4))
    with pytest.raises(IndexError, match=r"id 7 at position \(1, 0, 2\), out of range for 5") as e:
        check_ids(view, 5)
    assert view[1, 0, 2] == 7 and "7" in str(e.value)
    with pytest.raises(IndexError, match=r"negative id -2 at position \(0, 1\)"):
        check_ids(np.broadcast_to(np.array([1, -2]), (7, 2)), 5)
    # the first offending position in C order, as for an ordinary array
    view = np.broadcast_to(np.array([[0], [6], [8]]), (3, 50))
    with pytest.raises(IndexError, match=r"id 6 at position \(1, 0\)"):
        check_ids(view, 5)
    with pytest.raises(IndexError, match=r"id 6 at position \(1, 0\)"):
        check_ids(np.array(view), 5)


def test_lookup_larger_than_memory_fails_fast():
    """The checked lookup of a huge broadcast view would need terabytes: a MemoryError naming
    ids says so before anything is allocated, whatever the kernel's overcommit policy."""
    big = np.broadcast_to(np.int64(3), (10**6, 10**6))
    with pytest.raises(MemoryError, match=r"ids of shape \(1000000, 1000000\) .* GiB"):
        embedding_forward(big, np.zeros((5, 4), np.float32))
    out, _ = embedding_forward(np.broadcast_to(np.array([1, 4]), (50, 2)), np.eye(5))
    np.testing.assert_array_equal(out, np.eye(5)[np.tile([1, 4], (50, 1))])
