"""Shared test set-up.

- The torch tests run on one thread (their tensors are tiny; a thread pool only adds contention
  on a busy 2-core machine).
- Tests marked `lava` run Lava through the worker (`lsnn.runtime.lava.client`); without a Lava
  environment they are skipped with the reason.
- `tests/lava_env/` holds the tests that need Lava inside their own process (Lava's model code,
  lava-dl's NetX loader): they are collected only by an interpreter that imports Lava; the
  main suite runs them under the Lava interpreter (`tests/runtime/lava/test_lava_env.py`).
"""
import importlib.util

import pytest

collect_ignore = [] if importlib.util.find_spec("lava") is not None else ["lava_env"]


def pytest_collection_modifyitems(config, items):
    if not any("lava" in item.keywords for item in items):
        return
    from lsnn.errors import LavaUnavailableError
    from lsnn.runtime.lava.client import NO_LAVA, lava_python

    try:
        reason = None if lava_python() else NO_LAVA
    except LavaUnavailableError as exc:
        reason = str(exc)
    if reason:
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if "lava" in item.keywords:
                item.add_marker(skip)


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
