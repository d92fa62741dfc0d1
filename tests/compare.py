"""The one error measure the parity tests use (rnnkit vs the NumPy reference, vs torch), and the
report of the largest errors a converter's tests saw."""
import numpy as np
import pytest


def scaled_error(got, expected):
    """max |got - expected| / max(1, max |expected|) in float64, for arrays or tensors of one
    shape: absolute for values below 1, relative above, so one tolerance fits every scale."""
    got = np.asarray(got.detach() if hasattr(got, "detach") else got, dtype=np.float64)
    expected = np.asarray(expected.detach() if hasattr(expected, "detach") else expected,
                          dtype=np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got - expected)) / max(1.0, float(np.max(np.abs(expected)))))


def largest_error_report(label, errors):
    """A module-scoped autouse fixture that prints ``errors`` (what was compared -> largest scaled
    error seen; keys are strings or tuples of strings) after the module's tests, under
    ``label``. Shown with ``pytest -s``; it is how the closing notes' tables are made."""
    @pytest.fixture(autouse=True, scope="module")
    def report():
        yield
        for key, err in sorted(errors.items()):
            what = " ".join(key) if isinstance(key, tuple) else key
            print(f"{label}  {what:<55} {err:.1e}")
    return report
