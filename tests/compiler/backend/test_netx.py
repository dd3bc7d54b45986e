"""model.net: exact round trips, NetX's layer schema, NetX loading a chain, atomic writes."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from lsnn.compiler.backend import netx as hdf5_io
from lsnn.compiler.backend.netx import NET_FORMAT, is_netx_chain, netx_plan, read_net, write_net
from lsnn.errors import ArtifactError
from tests.factories.compiler import (
    assert_tree_equal,
    chain_artifact,
    chain_builder,
    compile_graph,
    skip_concat_artifact,
)


@pytest.mark.parametrize("factory", [chain_artifact, skip_concat_artifact])
@pytest.mark.parametrize("upto", ["read_artifact", "quantize"])
def test_write_read_roundtrip_every_array(tmp_path, factory, upto):
    g = compile_graph(factory(), upto=upto)
    path = write_net(g, tmp_path / "m.net")
    back = read_net(path)
    assert_tree_equal(back.to_dict(), g.to_dict())
    for s, t in zip(g.synapses, back.synapses):
        assert t.weight.dtype == s.weight.dtype and np.array_equal(t.weight, s.weight)
        assert (t.mask is None and s.mask is None) or np.array_equal(t.mask, s.mask)
    assert [f for f in os.listdir(tmp_path)] == ["m.net"]


def test_integers_reproduce_weight_over_scale(tmp_path):
    b = chain_builder(seed=3)
    art = b.build()
    back = read_net(write_net(compile_graph(art), tmp_path / "m.net"))
    ints = b.ints()
    for s in back.synapses:
        assert np.array_equal(s.weight, ints[s.name].astype(np.int32)), s.name
        entry = next(e for e in art["synapses"] if e["name"] == s.name)
        np.testing.assert_allclose(s.weight * entry["scale"], entry["weight"], rtol=1e-6, atol=0)
    for p in back.populations:
        ref = b.pop_ints(p.name)
        assert np.array_equal(p.bias_mant, ref["bias"])
        if p.kind == "lif":
            assert p.vth_mant == ref["vth"]


def test_netx_layer_schema_chain(tmp_path):
    g = compile_graph(chain_artifact())
    path = write_net(g, tmp_path / "m.net")
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == NET_FORMAT and bool(f.attrs["netx_loadable"])
        types = [f[f"layer/{i}/type"][()].decode() for i in range(len(f["layer"]))]
        assert types == ["input", "conv", "conv", "flatten", "dense"]
        assert list(f["layer/0/shape"][()]) == [2, 8, 8] and "neuron" not in f["layer/0"]
        stem = g.population("stem")
        conv = f["layer/1"]
        assert list(conv["shape"][()]) == [4, 8, 8]
        assert np.array_equal(conv["weight"][()], g.synapse("stem.conv").weight)
        assert list(conv["kernelSize"][()]) == [3, 3] and list(conv["stride"][()]) == [1, 1]
        assert list(conv["padding"][()]) == [1, 1] and int(conv["groups"][()]) == 1
        assert int(conv["inChannels"][()]) == 2 and int(conv["outChannels"][()]) == 4
        assert conv["neuron/type"][()].decode() == "CUBA"
        assert int(conv["neuron/iDecay"][()]) == stem.du + 1 == 4096
        assert int(conv["neuron/vDecay"][()]) == stem.dv == 3277
        assert int(conv["neuron/vThMant"][()]) == stem.vth_mant
        assert np.array_equal(conv["bias"][()], stem.bias_mant)
        assert list(f["layer/2/stride"][()]) == [2, 2]
        dense = f["layer/4"]
        assert dense["weight"][()].shape == (3, 6 * 4 * 4)
        assert int(dense["neuron/vThMant"][()]) == 2 ** 23 - 1 and int(dense["neuron/vDecay"][()]) == 0


def test_netx_plan_non_chain_uses_concat():
    g = compile_graph(skip_concat_artifact())
    plan = netx_plan(g)
    assert [layer.type for layer in plan] == ["input", "conv", "conv", "conv", "concat", "concat", "concat",
                                              "concat", "concat"]
    assert not is_netx_chain(g) and is_netx_chain(compile_graph(chain_artifact()))


def test_read_net_rejects_foreign_and_versions(tmp_path):
    with pytest.raises(ArtifactError, match="no such compiled net"):
        read_net(tmp_path / "missing.net")
    (tmp_path / "text.net").write_text("hello")
    with pytest.raises(ArtifactError, match="not a readable HDF5 file"):
        read_net(tmp_path / "text.net")
    with h5py.File(tmp_path / "foreign.net", "w") as f:
        f.create_group("layer")
    with pytest.raises(ArtifactError, match="not an lsnn compiled net"):
        read_net(tmp_path / "foreign.net")
    path = write_net(compile_graph(chain_artifact()), tmp_path / "m.net")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 7
    with pytest.raises(ArtifactError, match="compiled-net version 7 is not supported"):
        read_net(path)


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    g = compile_graph(chain_artifact())
    target = tmp_path / "m.net"
    write_net(g, target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(hdf5_io, "_write_tree", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_net(g, target)
    assert target.read_bytes() == before            # old file untouched
    assert sorted(os.listdir(tmp_path)) == ["m.net"]  # no temp file left
    with pytest.raises(RuntimeError):
        write_net(g, tmp_path / "new.net")
    assert sorted(os.listdir(tmp_path)) == ["m.net"]


def test_compiler_imports_without_torch_or_lava():
    import subprocess
    import sys

    code = ("import sys; import lsnn.compiler.pipeline, lsnn.compiler.cli, lsnn.compiler.backend.netx; "
            "bad = [m for m in ('torch', 'lava', 'h5py') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
