"""The built wheel holds every subpackage and the bundled profiles: it is built from the
checkout, unpacked apart from it, and imported with the editable install and the checkout out
of sight (the dependencies come from this environment's site-packages)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

_PROBE = """
import importlib, json, pkgutil, sys
import lsnn
mods = sorted(m.name for m in pkgutil.walk_packages(lsnn.__path__, "lsnn.")
              if not m.name.startswith("lsnn.runtime.lava."))
for m in mods:
    importlib.import_module(m)
from lsnn.hw_profiles import bundled_profiles
from lsnn.hw_profiles.profile import load_profile
print(json.dumps({"file": lsnn.__file__, "modules": mods, "profiles": sorted(bundled_profiles()),
                  "loihi2_cores": load_profile(target="loihi2").cores_per_chip}))
"""


def test_wheel_installs_and_imports_every_subpackage(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist")], check=True, cwd=tmp_path)
    wheels = list((tmp_path / "dist").glob("lsnn-*.whl"))
    assert len(wheels) == 1
    site = tmp_path / "site"
    with zipfile.ZipFile(wheels[0]) as z:
        z.extractall(site)
    deps = sysconfig.get_paths()["purelib"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), deps])
    # -S: no site module, so the editable install's .pth finder is not loaded; cwd outside the checkout
    out = subprocess.run([sys.executable, "-S", "-c", _PROBE], check=True, capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(info["file"]).is_relative_to(site)
    for pkg in ("lsnn.contract.chip", "lsnn.data.datasets", "lsnn.searcher.neuron.fused", "lsnn.searcher.space.supernet",
                "lsnn.searcher.search.loop", "lsnn.searcher.deploy.export", "lsnn.compiler.ir.graph",
                "lsnn.compiler.backend.netx", "lsnn.compiler.passes.place", "lsnn.runtime.emulator.engine",
                "lsnn.hw_profiles.profile", "lsnn.workflow", "lsnn.cli"):
        assert pkg in info["modules"], pkg
    assert {"loihi1", "loihi2", "tiny"} <= set(info["profiles"])
    assert info["loihi2_cores"] == 128
