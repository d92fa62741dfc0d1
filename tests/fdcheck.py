"""Element-by-element central differences of a scalar loss, for the model tests whose loss is
not the nn checker's sum(out * G) (test_nn_gradcheck.check_module covers that case)."""
import numpy as np

EPS = 1e-6
# Central differences with eps=1e-6 in float64: truncation O(eps^2 * f''') ~ 1e-12 and rounding
# O(1e-16 / eps) ~ 1e-10 on a loss of order 1, so 1e-7 absolute leaves a wide margin while any
# real error in a backward pass (order 1e-3 and up) fails.
ATOL = 1e-7


def assert_central_differences(loss, targets, eps=EPS, atol=ATOL):
    """loss(): the scalar loss of the current values. targets: (name, array, analytic gradient)
    triples; every element of every array is perturbed in place and restored."""
    for name, arr, grad in targets:
        for i in range(arr.size):
            old = arr.flat[i]
            arr.flat[i] = old + eps
            up = loss()
            arr.flat[i] = old - eps
            down = loss()
            arr.flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - grad.flat[i]) < atol, (name, i, numeric, grad.flat[i])
