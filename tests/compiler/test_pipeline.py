"""compile_artifact end to end: files, report numbers, atomic emit, round trip of the placed graph."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from lsnn.compiler.backend import emit as emit_mod
from lsnn.compiler.backend.netx import read_net
from lsnn.compiler.pipeline import PASSES, compile_artifact
from lsnn.compiler.report import format_table
from lsnn.errors import DesignRuleError
from lsnn.hw_profiles.profile import load_profile
from tests.factories.compiler import assert_tree_equal, chain_artifact, skip_concat_artifact, to_torch

LOIHI2 = load_profile(target="loihi2")


def test_pass_order():
    assert [name for name, _ in PASSES] == ["fold", "quantize", "split_readout", "sparsify", "delay_balance", "check_rules", "place"]


def test_compile_writes_net_and_report(tmp_path):
    art = skip_concat_artifact()
    res = compile_artifact(art, LOIHI2, out=tmp_path / "m.net")
    assert res.net_path == tmp_path / "m.net" and res.report_path == tmp_path / "m.report.json"
    assert sorted(os.listdir(tmp_path)) == ["m.net", "m.report.json"]
    back = read_net(res.net_path)
    assert_tree_equal(back.to_dict(), res.graph.to_dict())
    assert back.placement is not None and back.latency == 6
    rep = json.loads(res.report_path.read_text())
    assert rep["format"] == "lsnn.compile_report" and rep["target"]["name"] == "loihi2"
    g = res.graph
    t = rep["totals"]
    assert t["cores"] == g.placement.total_cores == sum(p["cores"] for p in rep["populations"])
    assert t["chips"] == 1 and t["latency_steps"] == 6 and t["T"] == 3 and t["steps_per_sample"] == 9
    assert t["model_size_bytes"] == sum(s.stats.nnz * s.weight_bits for s in g.synapses) / 8
    assert t["synapses"] == sum(s.stats.synapses for s in g.synapses)
    layer = next(L for L in rep["layers"] if L["name"] == "n1.skip")
    assert (layer["type"], layer["searched_bits"], layer["delay"]) == ("identity", None, 1)
    assert (layer["hardware_bits"], layer["exponent"]) == (g.synapse("n1.skip").weight_bits,
                                                           g.synapse("n1.skip").weight_exp)
    conv = next(L for L in rep["layers"] if L["name"] == "n0.conv")
    s = g.synapse("n0.conv")
    assert (conv["searched_bits"], conv["hardware_bits"], conv["exponent"]) == (2, 3, 0)
    assert conv["sparsity"] == pytest.approx(s.stats.sparsity, abs=1e-6) and conv["memory_bits"] == s.stats.memory_bits
    assert rep["predicted"] == {"synops": 4567.0, "bit_synops": 8910.0, "energy_pj": 1112.0,
                                "model_size_bytes": 123.0, "test_accuracy": 0.5, "test_accuracy_int": None}
    assert set(rep["timings_s"]) >= {"read_artifact", "quantize", "place"}
    text = format_table(rep)
    assert "n1.skip" in text and f"target loihi2: {t['cores']} cores on 1 chip(s)" in text


def test_energy_estimate_numbers():
    art = chain_artifact()
    art["metrics"]["synops"] = 1000.0
    art["metrics"]["spike_rates"] = {"stem": 0.5, "conv1": 0.25}
    rep = compile_artifact(art, LOIHI2).report
    e = rep["energy_estimate"]
    neurons = 256 + 96 + 3
    spikes = (0.5 * 256 + 0.25 * 96) * 4
    assert e["neuron_updates"] == neurons * 4 and e["spikes"] == spikes
    assert e["total_pj"] == pytest.approx(1000 * 23.6 + neurons * 4 * 52.0 + spikes * 1.7)


def test_compile_from_model_file(tmp_path):
    from lsnn.contract.artifact import save_artifact

    path = save_artifact(to_torch(chain_artifact()), tmp_path / "model.pt")
    res = compile_artifact(path, LOIHI2, out=tmp_path / "model.net")
    assert res.report["model"] == str(path)
    ref = compile_artifact(chain_artifact(), LOIHI2)
    for a, b in zip(res.graph.synapses, ref.graph.synapses):
        assert np.array_equal(a.weight, b.weight)


def test_design_rule_failure_leaves_no_file(tmp_path):
    with pytest.raises(DesignRuleError) as info:
        compile_artifact(chain_artifact(), load_profile(target="loihi1"), out=tmp_path / "m.net")
    assert info.value.rules() == ["graded_input"]
    assert os.listdir(tmp_path) == []


def test_emit_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(emit_mod.json, "dump", boom)
    with pytest.raises(OSError, match="disk full"):
        compile_artifact(chain_artifact(), LOIHI2, out=tmp_path / "m.net")
    assert os.listdir(tmp_path) == []


def test_emit_second_rename_failure_removes_first(tmp_path, monkeypatch):
    real = os.replace
    calls = []

    def flaky(src, dst):
        calls.append(dst)
        if str(dst).endswith(".report.json"):
            raise OSError("rename failed")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="rename failed"):
        compile_artifact(chain_artifact(), LOIHI2, out=tmp_path / "m.net")
    assert os.listdir(tmp_path) == [] and len(calls) >= 2


def test_readout_headroom_hand_computed():
    """Readout fed by a dense group [[3, -4, 0], [1, 1, 1]] from A and [[0], [2]] from the input:
    per-step worst inputs 7 and 5; bias 10 << 6 on class 0; T = 4 -> 4 * (64 * 7 + 640) = 4352."""
    import dataclasses

    from lsnn.compiler.report import readout_headroom
    from tests.factories.runtime import _input, dense, lif, make_graph, readout

    pops = [lif("A", (3, 1, 1)), dataclasses.replace(readout("out", 2, bias=[10, 0]), bias_exp=6)]
    syns = [dense("in.A", "input", "A", np.ones((3, 1), np.int32)),
            dense("A.out", "A", "out", np.array([[3, -4, 0], [1, 1, 1]], np.int32)),
            dense("in.out", "input", "out", np.array([[0], [2]], np.int32))]
    g = make_graph(_input((1, 1, 1), 1), pops, syns, T=4)
    h = readout_headroom(g)
    assert h["max_input_per_step"] == 7
    assert h["worst_case_potential"] == 4 * (64 * 7 + (10 << 6))
    assert not h["may_saturate"] and not h["current_may_wrap"]
    big = g.with_synapses([syns[0], dataclasses.replace(syns[1], weight=np.full((2, 3), 50000, np.int32)), syns[2]])
    hb = readout_headroom(big)                           # 150,000 per step: 64 x that > 2^23
    assert hb["may_saturate"] and hb["current_may_wrap"] and hb["neurons_that_may_saturate"] == 2
    assert "exceeds the chip's 24-bit clip" in format_table({**_minimal_report(), "readout_headroom": hb})
    assert readout_headroom(g.replace(stage="float")) is None


def _minimal_report() -> dict:
    return {"layers": [], "totals": {"cores": 1, "chips": 1, "neurons": 1, "synapses": 1, "synaptic_memory_bits": 8,
                                     "model_size_bytes": 1, "model_size_bytes_searched_bits": 1, "T": 1,
                                     "latency_steps": 1, "steps_per_sample": 2},
            "target": {"name": "t", "max_chips": 1, "cores_per_chip": 1}}
