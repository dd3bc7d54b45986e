"""Shared test set-up: the torch tests run on one thread (their tensors are tiny; a thread pool
only adds contention on a busy 2-core machine)."""
import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(request):
    torch = __import__("sys").modules.get("torch")
    if torch is None:          # tests that never imported torch (compiler, runtime) are left alone
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
