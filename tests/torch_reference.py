"""What the tests that compare rnnkit with torch share besides compare.py (import after
``pytest.importorskip("torch")``): torch held to one thread."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _torch_single_thread():
    """These problems are tiny: torch's thread pool only adds overhead on a shared machine.
    Autouse in every module that imports it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
