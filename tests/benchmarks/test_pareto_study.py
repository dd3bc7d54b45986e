"""benchmarks/pareto.py's bookkeeping: a finished run leaves a record, a recorded run is not run
again, an unfinished one resumes (with a stand-in for the lsnn command)."""
from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pareto():
    spec = importlib.util.spec_from_file_location("pareto_study", ROOT / "benchmarks" / "pareto.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FAKE = """#!{python}
import json, sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--out") + 1])
with open(out.parent / "calls.txt", "a") as f:
    f.write(" ".join(args) + "\\n")
(out / "config.yaml").write_text("strategy: x\\n")
if "--fail" not in args:
    (out / "summary.json").write_text(json.dumps({{"test_accuracy": 0.5}}))
sys.exit(3 if "--fail" in args else 0)
"""


def _fake_lsnn(tmp_path: Path) -> str:
    exe = tmp_path / "lsnn"
    exe.write_text(FAKE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_finished_run_is_recorded_and_not_run_again(tmp_path: Path) -> None:
    pareto, lsnn = _pareto(), _fake_lsnn(tmp_path)
    runs, records = tmp_path / "runs", tmp_path / "records"
    (d, args), *_ = pareto.jobs("digits", [0], runs, [])
    assert d.name == "litesnn_large_s0" and args[args.index("--seed") + 1] == "0"
    assert pareto.run_one(d, args, lsnn, records) == "litesnn_large_s0: done"
    assert json.loads((records / d.name / "summary.json").read_text()) == {"test_accuracy": 0.5}
    assert (records / d.name / "config.yaml").read_text() == "strategy: x\n"
    assert pareto.run_one(d, args, lsnn, records) == "litesnn_large_s0: recorded before"
    assert len((runs / "calls.txt").read_text().splitlines()) == 1


def test_failed_run_resumes_and_leaves_no_record(tmp_path: Path) -> None:
    pareto, lsnn = _pareto(), _fake_lsnn(tmp_path)
    runs, records = tmp_path / "runs", tmp_path / "records"
    d, args = runs / "hand_small_s1", ["--out", str(runs / "hand_small_s1"), "--fail"]
    assert pareto.run_one(d, args, lsnn, records) == "hand_small_s1: exit 3"
    assert not (records / "hand_small_s1").exists()
    pareto.run_one(d, args[:2], lsnn, records)            # second try: config.yaml is there -> --resume
    calls = (runs / "calls.txt").read_text().splitlines()
    assert "--resume" not in calls[0] and calls[1].endswith("--resume")
    assert (records / "hand_small_s1" / "summary.json").is_file()


def test_jobs_cover_every_strategy_point_and_seed(tmp_path: Path) -> None:
    pareto = _pareto()
    names = [d.name for d, _ in pareto.jobs("gsc", [0, 1], tmp_path, ["--config", "x.yaml"])]
    assert len(names) == len(set(names)) == 2 * 3 * len(pareto.STRATEGIES)
    assert names[0] == "litesnn_large_s0" and names[-1].endswith("small_s1")


def test_spikenas_runs_take_the_budget_of_their_cost_point(tmp_path: Path) -> None:
    pareto = _pareto()
    todo = pareto.jobs("cifar10", [0], tmp_path, [], ("spikenas",), {"large": 40.0, "medium": 12.5, "small": 6.0})
    budgets = {d.name: a[a.index("--memory-budget-kb") + 1] for d, a in todo}
    assert budgets == {"spikenas_large_s0": "40", "spikenas_medium_s0": "12.5", "spikenas_small_s0": "6"}
    with pytest.raises(SystemExit, match="no budget for cost point 'medium'"):
        pareto.jobs("cifar10", [0], tmp_path, [], ("spikenas",), {"large": 40.0})


def test_extra_cost_points_override_the_presets_weights(tmp_path: Path) -> None:
    pareto = _pareto()
    (d, args), = pareto.jobs("cifar10", [1], tmp_path, [], ("litesnn",), points=("medium_fifth",))
    assert d.name == "litesnn_medium_fifth_s1"
    # options after the preset win (lsnn's precedence), so the preset brings only its p
    assert args[args.index("--preset") + 1] == "medium"
    assert (args[args.index("--l1") + 1], args[args.index("--l2") + 1]) == ("0.03", "0.002")
    assert args.index("--l1") > args.index("--preset")
    with pytest.raises(SystemExit, match="unknown cost point.*huge"):
        pareto.jobs("cifar10", [0], tmp_path, [], ("litesnn",), points=("huge",))
    with pytest.raises(SystemExit, match="no bits and T for cost point 'medium_half'"):
        pareto.jobs("cifar10", [0], tmp_path, [], ("hand",), points=("medium_half",))
