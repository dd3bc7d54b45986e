"""`lsnn run`: a full emulator run on digits (report + plot), Lava + emulator agreement, one clear
error line per failure."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lsnn.cli import main
from lsnn.compiler.backend.netx import write_net
from tests.factories.runtime import chain_graph, digits_graph


def run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def _one_line_error(r, text):
    assert r.exit_code == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lsnn: error:") and text in lines[0], r.stderr


@pytest.fixture(scope="module")
def digits_net(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "model.net"
    write_net(digits_graph(T=3), path)
    return path


def test_emulator_run_writes_report_and_plot(digits_net, tmp_path):
    out, fig = tmp_path / "r.json", tmp_path / "f.png"
    r = run(digits_net, "--sim", "--engine", "emulator", "--limit", "40", "-o", out, "--plot", fig, "--quiet")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    rep = json.loads(out.read_text())
    assert rep["format"] == "lsnn.run_report" and rep["dataset"] == "digits" and rep["split"] == "test"
    assert rep["emulator"]["samples"] == 40 and 0.0 <= rep["emulator"]["accuracy"] <= 1.0
    assert rep["graph"]["latency"] == 3 and rep["latency"]["first_prediction_step"] == 3 + 3
    names = [g["name"] for g in rep["counts"]["groups"]]
    assert names == ["in.A", "A.B", "A.B.skip", "B.out"]
    t = rep["counts"]["totals"]
    assert t["measured_synops"] > 0 and t["predicted_synops"] > 0 and t["ratio"] > 0
    assert rep["counts"]["energy"]["profile"] == "loihi2" and rep["counts"]["energy"]["measured_pj"] > 0
    assert fig.is_file() and fig.stat().st_size > 1000
    assert "emulator (fast): 40 digits/test samples" in r.stdout and "SynOps/sample" in r.stdout


def test_default_paths_and_target(digits_net):
    r = run(digits_net, "--engine", "emulator", "--limit", "5", "--target", "tiny", "--no-plot", "--quiet")
    assert r.exit_code == 0, r.stderr
    rep = json.loads(digits_net.with_suffix(".run.json").read_text())
    assert rep["counts"]["energy"]["profile"] == "tiny"


def test_missing_and_foreign_files(tmp_path):
    _one_line_error(run(tmp_path / "nope.net", "--sim"), "no such file")
    bad = tmp_path / "x.net"
    bad.write_text("not hdf5")
    _one_line_error(run(bad, "--sim"), "not a readable HDF5 file")
    _one_line_error(run(), "missing MODEL.net")


def test_dataset_mismatch_and_unnamed_dataset(tmp_path):
    path = tmp_path / "chain.net"
    write_net(chain_graph(), path)                     # input (2, 5, 5), no dataset in meta
    _one_line_error(run(path, "--sim", "--quiet"), "does not name its dataset; pass --dataset")
    _one_line_error(run(path, "--sim", "--dataset", "digits", "--quiet"),
                    "has input shape (1, 8, 8) (C, H, W) but")
    _one_line_error(run(path, "--sim", "--dataset", "mnist", "--quiet"), "unknown dataset 'mnist'")


def test_option_errors(digits_net):
    _one_line_error(run(digits_net, "--sim", "--hw"), "--sim or --hw, not both")
    _one_line_error(run(digits_net, "--engine", "emulator", "--limit", "0", "--quiet"), "--limit >= 1")
    _one_line_error(run(digits_net, "--engine", "emulator", "--target", "loihi9", "--quiet"), "unknown target")


@pytest.mark.lava
def test_hw_without_lava_loihi(digits_net):
    _one_line_error(run(digits_net, "--hw"), "--hw needs lava-loihi")


@pytest.mark.lava
def test_both_engines_agree(digits_net, tmp_path):
    out = tmp_path / "both.json"
    r = run(digits_net, "--sim", "--samples", "2", "--limit", "10", "-o", out, "--no-plot", "--quiet")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    rep = json.loads(out.read_text())
    ag = rep["lava"]["agreement"]
    assert ag["spikes_identical"] and ag["readout_v_identical"] and ag["predictions"] == 1.0
    assert ag["first_difference"] is None
    assert rep["lava"]["samples"] == 2 and rep["lava"]["num_steps"] == 2 * 3 + 3
    assert rep["lava"]["backend"] == "loihi2-sim-fixed_pt" and rep["lava"]["per_step_s"] > 0
    assert "bit-exact" in r.stdout


@pytest.mark.lava
def test_lava_only_counts_from_lavas_spikes(digits_net, tmp_path):
    out = tmp_path / "lava.json"
    r = run(digits_net, "--sim", "--engine", "lava", "--samples", "2", "-o", out, "--no-plot", "--quiet")
    assert r.exit_code == 0, (r.stdout, r.stderr)
    rep = json.loads(out.read_text())
    assert "emulator" not in rep and rep["counts_source"] == "lava" and rep["counts"]["num_samples"] == 2


def test_both_emulator_backends_give_the_same_report(digits_net, tmp_path):
    reps = {}
    for be in ("fast", "numpy"):
        out = tmp_path / f"{be}.json"
        r = run(digits_net, "--engine", "emulator", "--limit", "30", "--emulator-backend", be, "-o", out,
                "--no-plot", "--quiet")
        assert r.exit_code == 0, (r.stdout, r.stderr)
        reps[be] = json.loads(out.read_text())
        assert reps[be]["emulator"]["backend"] == be and reps[be]["emulator"]["startup_s"] >= 0
    assert reps["fast"]["emulator"]["accuracy"] == reps["numpy"]["emulator"]["accuracy"]
    assert reps["fast"]["counts"] == reps["numpy"]["counts"]
    bad = run(digits_net, "--emulator-backend", "gpu")
    assert bad.exit_code == 2 and "'gpu' is not one of 'auto', 'fast', 'numpy'" in bad.stderr
