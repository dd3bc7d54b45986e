"""The package's layers (docs/DESIGN.md section 1): every import, at module level or inside a
function, points down. Parsed from the source, so a lazy import cannot hide a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# installed name -> source folder (setup.cfg's package_dir)
PACKAGES = {"lsnn": "lsnn", "lsnn.searcher": "searcher", "lsnn.compiler": "compiler",
            "lsnn.runtime": "runtime", "lsnn.hw_profiles": "hw_profiles"}
# a module's layer is the longest prefix listed; it may import its own layer and those below
LAYER = {
    "lsnn.errors": 0, "lsnn.io": 0, "lsnn.machine": 0,
    "lsnn.contract": 1, "lsnn.data": 1, "lsnn.cost_model": 1,
    "lsnn.hw_profiles": 2,
    "lsnn.searcher": 3, "lsnn.compiler": 3,
    "lsnn.runtime": 4,
    "lsnn.workflow": 5, "lsnn.cli": 5, "lsnn": 5,
}
# stages on one layer that must not import each other
SEPARATE = {("lsnn.searcher", "lsnn.compiler"), ("lsnn.compiler", "lsnn.searcher")}


def _key(module: str) -> str:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in LAYER:
            return ".".join(parts[:n])
    raise KeyError(module)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for pkg, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((".".join([pkg, *parts]), path))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, n) for line, n in names if n == "lsnn" or n.startswith("lsnn.")]


def test_every_module_has_a_layer():
    mods = _modules()
    assert len(mods) > 80
    for name, _ in mods:
        _key(name)


@pytest.mark.parametrize("name,path", _modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down(name, path):
    mine = LAYER[_key(name)]
    for line, imported in _imports(path):
        if imported in ("lsnn", "lsnn.__version__"):      # lsnn/__init__.py: the version only
            continue
        theirs = _key(imported)
        where = f"{path.relative_to(ROOT)}:{line} imports {imported}"
        assert LAYER[theirs] <= mine, f"{where}: layer {LAYER[theirs]} is above this module's {mine}"
        assert (_key(name), theirs) not in SEPARATE, f"{where}: {_key(name)} must not import {theirs}"
