"""The README's main job at toy scale: `lsnn search` on digits runs search -> decode -> retrain ->
model.pt -> compile (loihi2) -> emulator + Lava, and every stage hands the next exactly what it
trained: the compiled integers are the artifact's weights / scale, the emulator predicts what
PyTorch predicts, Lava equals the emulator."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from lsnn.cli import main
from lsnn.compiler.backend.netx import read_net
from lsnn.contract.artifact import load_artifact

pytestmark = [pytest.mark.slow, pytest.mark.lava]


def test_search_cli_runs_the_whole_pipeline(tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["search", "--out", str(out), "-C", "4", "--cells", "2", "--reductions", "1",
                                  "-T", "2", "--search-epochs", "1", "--retrain-epochs", "2",
                                  "--lava-samples", "2", "--num-threads", "1"])
    assert r.exit_code == 0, r.output
    for f in ("config.yaml", "search_log.jsonl", "genotype.json", "retrain_log.jsonl", "model.pt", "model.net",
              "model.report.json", "model.run.json", "summary.json", "search_history.png",
              "weight_distribution.png", "retrain_history.png", "model.run.png"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    dep = summary["deploy"]
    assert dep["torch_vs_emulator"]["prediction_agreement"] == 1.0
    assert dep["torch_vs_emulator"]["samples"] == 360
    assert dep["lava_bit_exact"] is True
    assert summary["T"] in (1, 2)

    art = load_artifact(out / "model.pt")
    graph = read_net(out / "model.net")
    by_name = {s.name: s for s in graph.synapses}
    for s in art["synapses"]:   # a readout group split into parts adds back to it (Graph.unsplit)
        w = s["weight"].double().numpy()
        ints = np.asarray(graph.unsplit(by_name[s["name"]]).weight, dtype=np.float64)
        assert np.array_equal(np.round(w / s["scale"]), ints), s["name"]
        assert np.allclose(ints * s["scale"], w, rtol=1e-6, atol=0.0), s["name"]  # float32 weights
    pops = {p.name: p for p in graph.populations}
    for p in art["populations"]:
        bias = p["bias"].double().numpy() / p["scale"]
        assert np.array_equal(np.round(bias), np.asarray(pops[p["name"]].bias_mant, dtype=np.float64)[:len(bias)]
                              * 2.0 ** (pops[p["name"]].bias_exp - 6))
