"""The tests that need Lava inside their own process (`tests/lava_env/`: Lava's bit-accurate LIF
code, lava-dl's NetX loader) run under the Lava interpreter, as a nested pytest."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsnn.runtime.lava.client import lava_python

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.lava, pytest.mark.slow]


def test_lava_side_suite_passes():
    py = lava_python()
    if py == sys.executable:
        pytest.skip("this interpreter imports Lava: tests/lava_env is collected directly")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    r = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/lava_env"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in r.stdout.strip().splitlines()[-1]
