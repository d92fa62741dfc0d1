"""rnnkit governs the BLAS pools while it works: the layers' dense products run on rnnkit's own
pool (rnnkit._linalg.matmul over rnnkit._core.gemm), and inside rnnkit.govern_blas() every other
BLAS pool (NumPy's) is single-threaded, so two pools never fight for the same cores."""
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import rnnkit
from rnnkit._linalg import matmul
from rnnkit import nn
from rnnkit.train import Trainer


def _numpy_blas_threads():
    """Thread counts of the BLAS libraries other than the one rnnkit loaded for itself (which
    rnnkit keeps at one thread anyway)."""
    return [i["num_threads"] for i in threadpool_info()
            if i["user_api"] == "blas" and "scipy_openblas32" not in i["filepath"]] or [None]


# float32: one rounding per product term with K <= 300 terms of size ~1: |error| < K * 2^-24 * 9
# ~ 2e-4 in the worst case, typically 1e-5; 1e-4 relative to the largest entry is loose enough
# and still catches a wrong transpose or a missed accumulate. float64: the same at 2^-53.
TOL = {np.float32: 1e-4, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout_a", ["c", "t", "strided"])
@pytest.mark.parametrize("layout_b", ["c", "t", "strided"])
def test_matmul_matches_numpy_for_every_operand_layout(dtype, layout_a, layout_b):
    rng = np.random.default_rng(0)
    M, K, N = 37, 29, 41

    def make(shape, layout):
        if layout == "c":
            return rng.standard_normal(shape).astype(dtype)
        if layout == "t":  # a transposed view of a C-contiguous array (passed as a transpose)
            return rng.standard_normal(shape[::-1]).astype(dtype).T
        return rng.standard_normal((shape[0], 2 * shape[1])).astype(dtype)[:, ::2]  # copied

    a, b = make((M, K), layout_a), make((K, N), layout_b)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    got = matmul(a, b)
    assert got.dtype == dtype and got.shape == (M, N) and got.flags.c_contiguous
    assert np.max(np.abs(got - expected)) <= TOL[dtype] * np.max(np.abs(expected))
    out = np.ones((M, N), dtype)
    assert matmul(a, b, out=out, accumulate=True) is out
    assert np.max(np.abs(out - (expected + 1))) <= TOL[dtype] * np.max(np.abs(expected))


def test_matmul_uses_the_pool_for_large_products_and_agrees(restore_isa_and_threads):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((512, 300)).astype(np.float32)
    b = rng.standard_normal((300, 400)).astype(np.float32)  # 61M multiply-adds: parallel panels
    rnnkit.set_num_threads(1)
    one = matmul(a, b)
    rnnkit.set_num_threads(3)
    assert np.array_equal(matmul(a, b), one)  # panels split C, never the sum: bit-identical


def test_matmul_empty_dimensions():
    a = np.zeros((3, 0), np.float32)
    b = np.zeros((0, 4), np.float32)
    assert np.array_equal(matmul(a, b), np.zeros((3, 4), np.float32))
    out = np.full((3, 4), 2.0, np.float32)
    assert np.array_equal(matmul(a, b, out=out, accumulate=True), np.full((3, 4), 2.0, np.float32))
    assert matmul(np.zeros((0, 5)), np.zeros((5, 2))).shape == (0, 2)


def test_gemm_binding_rejects_bad_operands():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="C must be writeable"):
        out = np.zeros((2, 2), np.float32)
        out.setflags(write=False)
        rnnkit._core.gemm(a, False, np.ones((3, 2), np.float32), False, out)
    with pytest.raises(ValueError, match="B must have shape"):
        rnnkit._core.gemm(a, False, np.ones((4, 2), np.float32), False, np.zeros((2, 2), np.float32))
    with pytest.raises(TypeError, match="A must have dtype float32"):
        rnnkit._core.gemm(a.astype(np.float64), False, np.ones((3, 2), np.float32), False,
                          np.zeros((2, 2), np.float32))


def test_govern_blas_single_threads_numpy_blas_and_restores():
    before = _numpy_blas_threads()
    with rnnkit.govern_blas():
        assert set(_numpy_blas_threads()) <= {1, None}
        with rnnkit.govern_blas():  # nested: still limited, and the inner exit keeps the limit
            pass
        assert set(_numpy_blas_threads()) <= {1, None}
    assert _numpy_blas_threads() == before


def test_govern_blas_entered_from_another_thread_keeps_the_limit_until_the_last_exit():
    before = _numpy_blas_threads()
    entered, release = threading.Event(), threading.Event()

    def work():
        with rnnkit.govern_blas():
            entered.set()
            release.wait(30)

    with rnnkit.govern_blas():
        worker = threading.Thread(target=work)
        worker.start()
        assert entered.wait(30)
        release.set()
        worker.join(30)
        assert not worker.is_alive()
        assert set(_numpy_blas_threads()) <= {1, None}  # the worker's exit did not restore
    assert _numpy_blas_threads() == before


class _Recorder(nn.Module):
    """A Linear that records NumPy's BLAS threads whenever it runs."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2, seed=0)
        self.seen = []

    def forward(self, x, *, lengths=None, training=False):
        self.seen.append(tuple(_numpy_blas_threads()))
        return self.fc.forward(x, training=training)

    def backward(self, grad):
        return self.fc.backward(grad)


def test_trainer_fit_evaluate_predict_run_with_numpy_blas_single_threaded():
    before = _numpy_blas_threads()
    model = _Recorder()
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    y = np.array([0, 1] * 4)
    trainer = Trainer(model, quiet=True)
    trainer.fit((x, y), (x, y), epochs=1, batch_size=4)
    trainer.evaluate((x, y))
    trainer.predict(x)
    assert model.seen and all(set(s) <= {1, None} for s in model.seen)
    assert _numpy_blas_threads() == before
