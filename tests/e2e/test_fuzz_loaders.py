"""Property-based fuzzing of the file loaders (bounded for CI time): whatever bytes or mutated
structure a file holds, loading it ends in a correct load or one LsnnError line, never another
exception. Mutations start from valid files, so the fuzzer reaches the deep checks too. Derandomized
(the same examples on every run, so CI cannot turn red by chance); to search further, set
derandomize=False and a larger max_examples in FUZZ."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsnn.compiler.backend.netx import read_net
from lsnn.compiler.pipeline import compile_artifact
from lsnn.contract.artifact import load_artifact
from lsnn.errors import LsnnError
from lsnn.hw_profiles.profile import load_profile, profile_to_yaml_dict
from lsnn.searcher.config import load_yaml_config
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.space.random_genotype import random_genotype
from tests.factories.compiler import skip_concat_artifact

FUZZ = settings(max_examples=int(__import__("os").environ.get("LSNN_FUZZ_EXAMPLES", 60)), deadline=None, derandomize=__import__("os").environ.get("LSNN_FUZZ_EXAMPLES") is None, suppress_health_check=list(HealthCheck))
LOIHI2 = load_profile(target="loihi2")

# JSON-like values to splice into valid documents
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
                  st.text(max_size=8))
_value = st.recursive(_leaf, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c,
                                                                                          max_size=3)), max_leaves=6)


def _mutate(doc, path_choice: int, value):
    """Replace (or delete, if value is the string '__del__') one entry reached by walking `doc`."""
    node, keys = doc, []
    while isinstance(node, (dict, list)) and node:
        ks = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        k = ks[path_choice % len(ks)]
        keys.append((node, k))
        path_choice //= max(1, len(ks))
        if path_choice == 0:
            break
        node = node[k]
    if not keys:
        return value
    parent, k = keys[-1]
    if value == "__del__" and isinstance(parent, dict):
        del parent[k]
    else:
        parent[k] = value
    return doc


def _expect_clean(load, path):
    try:
        load(path)
    except LsnnError as exc:
        assert "\n" not in str(exc).strip() or "violation" in str(exc).lower(), str(exc)


@FUZZ
@given(st.integers(0, 10**6), st.one_of(_value, st.just("__del__")))
def test_genotype_json(tmp_path_factory, choice, value):
    d = random_genotype(0, cells=3).to_dict()
    p = tmp_path_factory.mktemp("g") / "genotype.json"
    p.write_text(json.dumps(_mutate(d, choice, value)))
    _expect_clean(Genotype.load, p)


@FUZZ
@given(st.integers(0, 10**6), st.one_of(_value, st.just("__del__")))
def test_hardware_profile_yaml(tmp_path_factory, choice, value):
    from lsnn.hw_profiles.profile import load_profile as lp

    p = tmp_path_factory.mktemp("p") / "chip.yaml"
    p.write_text(yaml.safe_dump(_mutate(profile_to_yaml_dict(LOIHI2), choice, value)))
    _expect_clean(lambda q: lp(path=q), p)


@FUZZ
@given(st.integers(0, 10**6), st.one_of(_value, st.just("__del__")))
def test_run_config_yaml(tmp_path_factory, choice, value):
    from lsnn.searcher.config import build_config

    p = tmp_path_factory.mktemp("c") / "run.yaml"
    p.write_text(yaml.safe_dump(_mutate({"dataset": "digits", "C": 8, "cells": 3, "reductions": [1, 2],
                                         "T": 4, "augment": "none"}, choice, value)))
    _expect_clean(lambda q: build_config(None, load_yaml_config(q), {}, source=str(q)), p)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["genotype", "profile", "config", "net", "model"]))
def test_arbitrary_bytes(tmp_path_factory, data, kind):
    from lsnn.hw_profiles.profile import load_profile as lp

    p = tmp_path_factory.mktemp("b") / "file"
    p.write_bytes(data)
    load = {"genotype": Genotype.load, "profile": lambda q: lp(path=q), "config": load_yaml_config,
            "net": read_net, "model": load_artifact}[kind]
    _expect_clean(load, p)


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("n") / "m.net"
    compile_artifact(skip_concat_artifact(), LOIHI2, out=p)
    return p


@FUZZ
@given(st.integers(0, 10**9), st.integers(0, 255), st.booleans())
def test_model_net_bytes_flipped_or_truncated(tmp_path_factory, net_file, pos, byte, truncate):
    p = tmp_path_factory.mktemp("n2") / "m.net"
    b = bytearray(net_file.read_bytes())
    i = pos % len(b)
    if truncate:
        b = b[:i]
    else:
        b[i] = byte
    p.write_bytes(bytes(b))
    _expect_clean(read_net, p)


@FUZZ
@given(st.integers(0, 10**6), st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_model_net_dataset_values(tmp_path_factory, net_file, choice, value):
    p = tmp_path_factory.mktemp("n3") / "m.net"
    p.write_bytes(net_file.read_bytes())
    with h5py.File(p, "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.size > 0 else None)
        ds = f[sorted(names)[choice % len(names)]]
        arr = np.array(ds[()])
        if arr.dtype.kind in "iuf":
            with np.errstate(all="ignore"):
                arr.flat[choice % arr.size] = np.array(value).astype(arr.dtype)
            ds[...] = arr
    _expect_clean(read_net, p)


_tensor = st.builds(lambda shape, kind: torch.zeros(shape, dtype=kind),
                    st.lists(st.integers(0, 3), max_size=4).map(tuple),
                    st.sampled_from([torch.float32, torch.int64, torch.bool, torch.float16]))


def _as_torch(doc):
    """The artifact as model.pt holds it: NumPy arrays become tensors."""
    if isinstance(doc, dict):
        return {k: _as_torch(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_as_torch(v) for v in doc]
    return torch.from_numpy(np.ascontiguousarray(doc)) if isinstance(doc, np.ndarray) else doc


def test_the_unmutated_model_pt_compiles(tmp_path):
    p = tmp_path / "model.pt"
    torch.save(_as_torch(skip_concat_artifact()), p)
    assert compile_artifact(p, LOIHI2).report["totals"]["cores"] > 0


@FUZZ
@given(st.integers(0, 10**6), st.one_of(_value, _tensor, st.just("__del__")))
def test_model_pt_structure(tmp_path_factory, choice, value):
    """model.pt with one entry replaced (by JSON-like values or a tensor of another shape and
    dtype) or deleted: loading and compiling it ends cleanly or in one LsnnError line."""
    art = _mutate(_as_torch(skip_concat_artifact()), choice, value)
    p = tmp_path_factory.mktemp("pt") / "model.pt"
    torch.save(art, p)                                   # as a foreign tool might: no validation on the way out
    _expect_clean(lambda q: compile_artifact(q, LOIHI2), p)
