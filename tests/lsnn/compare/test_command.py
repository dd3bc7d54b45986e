"""`lsnn compare`: the three outputs and their content, the printed table, one-line errors that write nothing."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lsnn.cli import main

from .conftest import old_summary, summary

RUN_KEYS = {"strategy", "seed", "test_accuracy", "model_size_bytes", "bit_synops", "measured_synops", "T",
            "bits_per_cell", "prune_rate", "wall_seconds", "search_seconds", "retrain_seconds", "run"}


def compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


@pytest.fixture
def runs(make_run):
    return [make_run("s0", summary=summary(seed=0, test_accuracy=0.90, model_size_bytes=1000.0, bit_synops=2e6)),
            make_run("s1", summary=summary(seed=1, test_accuracy=0.94, model_size_bytes=1000.0, bit_synops=4e6)),
            make_run("hand", summary=old_summary(test_accuracy=0.80, model_size_bytes=500.0, bit_synops=1e6),
                     config={"strategy": "hand", "seed": 0})]


def test_writes_json_markdown_and_png(runs, tmp_path):
    out = tmp_path / "cmp"
    r = compare(*runs, "--out", out)
    assert r.exit_code == 0, (r.stdout, r.stderr)
    rep = json.loads((out / "compare.json").read_text())
    assert [set(row) - {"point"} for row in rep["runs"]] == [RUN_KEYS] * 3
    assert [(row["strategy"], row["seed"], row["test_accuracy"]) for row in rep["runs"]] == [
        ("litesnn", 0, 0.90), ("litesnn", 1, 0.94), ("hand", 0, 0.80)]
    assert rep["runs"][0]["measured_synops"] == 10711472.7 and rep["runs"][2]["measured_synops"] is None
    assert rep["runs"][2]["search_seconds"] is None and rep["runs"][0]["run"] == str(runs[0])
    lite, hand = rep["points"]
    assert (lite["point"], lite["n"], lite["seeds"]) == ("medium l1=0.15 l2=0.01 p=0.7", 2, [0, 1])
    assert lite["test_accuracy_mean"] == pytest.approx(0.92) and lite["test_accuracy_std"] == pytest.approx(0.02)
    assert lite["bit_synops_mean"] == 3e6 and lite["bit_synops_std"] == 1e6
    assert (lite["model_size_bytes_mean"], lite["model_size_bytes_std"]) == (1000.0, 0.0)
    assert (hand["point"], hand["n"], hand["test_accuracy_std"]) == ("bits 4/2/2 T=3", 1, 0.0)
    assert rep["fronts"]["hand"]["bit_synops"] == [{"point": "bits 4/2/2 T=3", "test_accuracy": 0.8,
                                                   "bit_synops": 1e6}]
    assert [p["model_size_bytes"] for p in rep["fronts"]["litesnn"]["model_size_bytes"]] == [1000.0]
    table = (out / "compare.md").read_text()
    assert table.count("\n") == 5 and "| 94.00 |" in table and "| hand |" in table
    assert r.stdout.startswith(table) and "compare.json" in r.stdout.splitlines()[-1]
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "compare.md", "pareto.png"]


def test_default_out_dir(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert compare(runs[0]).exit_code == 0
    assert (tmp_path / "compare" / "compare.json").is_file()


@pytest.mark.parametrize("kw, text", [
    ({}, "summary.json: missing"),
    ({"raw": "{"}, "summary.json: not readable JSON"),
    ({"summary": summary(model_size_bytes=None)}, "summary.json: 'model_size_bytes' must be a finite number"),
])
def test_bad_run_dir_is_one_error_line_and_writes_nothing(runs, make_run, tmp_path, kw, text):
    bad, out = make_run("bad", **kw), tmp_path / "cmp"
    r = compare(runs[0], bad, "--out", out)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert r.stderr.splitlines() == [r.stderr.strip()]
    assert r.stderr.strip().startswith(f"lsnn: error: {bad}/{text}")
    assert not out.exists() and r.stdout == ""


def test_usage_errors(tmp_path):
    assert compare().exit_code == 2                                  # at least one RUN_DIR
    r = compare(tmp_path / "nope", "--out", tmp_path / "cmp")
    assert r.exit_code == 2 and "does not exist" in r.stderr and not (tmp_path / "cmp").exists()
    (tmp_path / "f").write_text("x")
    assert compare(tmp_path / "f").exit_code == 2                    # a file, not a directory
