"""The one error measure the parity tests use (rnnkit vs the NumPy reference, vs torch)."""
import numpy as np


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
