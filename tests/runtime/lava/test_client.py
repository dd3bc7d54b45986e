"""Which interpreter runs the Lava worker (no Lava needed for these)."""
import sys
from pathlib import Path

import pytest

from lsnn.errors import LavaUnavailableError
from lsnn.runtime.lava import client


def test_env_var_wins_and_a_bad_one_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv(client.ENV_VAR, sys.executable)
    assert client.lava_python() == sys.executable
    monkeypatch.setenv(client.ENV_VAR, str(tmp_path / "nope"))
    with pytest.raises(LavaUnavailableError, match=f"{client.ENV_VAR}=.*nope: no such executable"):
        client.lava_python()


def test_an_interpreter_that_imports_lava_runs_the_worker_itself(monkeypatch, tmp_path):
    """No .venv-lava and no variable: this interpreter if it has Lava (the same worker path), else none."""
    monkeypatch.delenv(client.ENV_VAR, raising=False)
    monkeypatch.setattr(client, "_checkout_venv", lambda: Path(tmp_path / "none"))
    monkeypatch.setattr(client.importlib.util, "find_spec", lambda name: object() if name == "lava" else None)
    assert client.lava_python() == sys.executable
    monkeypatch.setattr(client.importlib.util, "find_spec", lambda name: None)
    assert client.lava_python() is None
    with pytest.raises(LavaUnavailableError, match="Lava checks are off"):
        client.require_lava_python()
