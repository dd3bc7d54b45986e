"""read_run (new and old summaries, config fallbacks, errors), the Markdown table, grouping over seeds."""
from __future__ import annotations

import math

import pytest

from lsnn.compare.table import RunRow, group_points, read_run, rows_to_markdown
from lsnn.errors import ConfigError, LsnnError

from .conftest import old_summary, summary


def test_new_summary_reads_every_field(make_run):
    row = read_run(make_run("a", summary=summary()))
    assert row == RunRow(run=str(row.run), strategy="litesnn", seed=0, point="medium l1=0.15 l2=0.01 p=0.7",
                         test_accuracy=0.9556, model_size_bytes=21357.0, bit_synops=45835044.6,
                         measured_synops=10711472.7, T=3, bits_per_cell=[4, 2, 2], prune_rate=0.7,
                         search_seconds=100.2, retrain_seconds=80.1, wall_seconds=920.4)
    assert row.run.endswith("/a")


def test_old_summary_falls_back_to_config(make_run):
    config = {"preset": "small", "seed": 3, "l1": None, "l2": None, "p": None, "T": 4}
    row = read_run(make_run("old", summary=old_summary(), config=config))
    assert (row.strategy, row.seed, row.point) == ("litesnn", 3, "small p=0.7")
    assert row.measured_synops is None and row.search_seconds is None and row.retrain_seconds is None
    assert row.wall_seconds == 920.4 and row.T == 3


def test_config_overrides_and_strategy(make_run):
    config = {"strategy": "random", "preset": "large", "l1": 0.3, "l2": 0.02, "seed": 7}
    row = read_run(make_run("r", summary=old_summary(prune_rate=0.5), config=config))
    assert (row.strategy, row.seed, row.point) == ("random", 7, "large l1=0.3 l2=0.02 p=0.5")


def test_summary_wins_over_config_and_no_config_at_all(make_run):
    row = read_run(make_run("s", summary=summary(seed=4), config={"seed": 9, "preset": "small"}))
    assert (row.seed, row.point) == (4, "medium l1=0.15 l2=0.01 p=0.7")
    bare = read_run(make_run("bare", summary=old_summary()))
    assert (bare.strategy, bare.seed, bare.point) == ("litesnn", None, "p=0.7")


def test_hand_strategy_point_is_bits_and_T(make_run):
    row = read_run(make_run("h", summary=summary(strategy="hand", bits_per_cell=[2, 2, 1], T=2)))
    assert row.point == "bits 2/2/1 T=2"


def test_spikenas_point_is_the_memory_budget_and_p(make_run):
    row = read_run(make_run("s", summary=summary(strategy="spikenas", prune_rate=0.8),
                            config={"memory_budget_kb": 12.5}))
    assert row.point == "budget 12.5 kB p=0.8"
    free = read_run(make_run("f", summary=summary(strategy="spikenas", prune_rate=0.8)))
    assert free.point == "no budget p=0.8"


def test_failed_deploy_has_no_measured_synops(make_run):
    row = read_run(make_run("d", summary=summary(deploy={"target": "loihi2", "error": "boom"})))
    assert row.measured_synops is None


@pytest.mark.parametrize("kw, file, text", [
    ({}, "summary.json", "missing"),
    ({"raw": "{not json"}, "summary.json", "not readable JSON"),
    ({"raw": "[1, 2]"}, "summary.json", "expected a JSON object, got list"),
    ({"summary": summary(test_accuracy=None)}, "summary.json", "'test_accuracy' must be a finite number, got None"),
    ({"summary": summary(bit_synops="many")}, "summary.json", "'bit_synops' must be a finite number"),
    ({"raw": '{"test_accuracy": NaN, "model_size_bytes": 1, "bit_synops": 1}'}, "summary.json", "finite"),
    ({"summary": summary(l1="big")}, "summary.json", "'l1' has the wrong type (str: 'big')"),
    ({"summary": summary(bits_per_cell=[4, "x"])}, "summary.json", "list of integers"),
    ({"summary": summary(), "config": "a: [1"}, "config.yaml", "not readable YAML"),
    ({"summary": summary(), "config": "- 1\n- 2\n"}, "config.yaml", "expected a mapping"),
])
def test_bad_run_is_one_line_config_error_naming_the_file(make_run, kw, file, text):
    run = make_run("bad", **kw)
    with pytest.raises(ConfigError) as info:
        read_run(run)
    message = str(info.value)
    assert isinstance(info.value, LsnnError) and "\n" not in message
    assert message.startswith(f"{run / file}: ") and text in message, message


def _row(strategy: str, point: str, seed: int, acc: float, size: float, bso: float) -> RunRow:
    return RunRow(run=f"runs/{strategy}{seed}", strategy=strategy, seed=seed, point=point, test_accuracy=acc,
                  model_size_bytes=size, bit_synops=bso)


def test_group_points_mean_and_population_std():
    rows = [_row("litesnn", "medium", 0, 0.90, 100.0, 1e6), _row("hand", "bits 4 T=3", 0, 0.80, 50.0, 2e6),
            _row("litesnn", "medium", 1, 0.92, 200.0, 1e6), _row("litesnn", "medium", 2, 0.94, 300.0, 4e6)]
    lite, hand = group_points(rows)
    assert (lite.strategy, lite.point, lite.n, lite.seeds) == ("litesnn", "medium", 3, [0, 1, 2])
    assert lite.mean["test_accuracy"] == pytest.approx(0.92)
    assert lite.std["test_accuracy"] == pytest.approx(math.sqrt(2 * 0.02 ** 2 / 3))   # 0.01633
    assert lite.mean["model_size_bytes"] == pytest.approx(200.0)
    assert lite.std["model_size_bytes"] == pytest.approx(math.sqrt(20000 / 3))       # 81.65
    assert lite.mean["bit_synops"] == pytest.approx(2e6)
    assert lite.std["bit_synops"] == pytest.approx(math.sqrt(2e12))                  # dev -1e6, -1e6, 2e6
    assert (hand.n, hand.std["test_accuracy"], hand.std["bit_synops"]) == (1, 0.0, 0.0)
    assert hand.to_dict() == {"strategy": "hand", "point": "bits 4 T=3", "n": 1, "seeds": [0],
                              "test_accuracy_mean": 0.8, "test_accuracy_std": 0.0, "model_size_bytes_mean": 50.0,
                              "model_size_bytes_std": 0.0, "bit_synops_mean": 2e6, "bit_synops_std": 0.0}


def test_same_point_of_two_strategies_stays_apart():
    groups = group_points([_row("a", "medium", 0, 0.9, 1.0, 1.0), _row("b", "medium", 0, 0.5, 1.0, 1.0)])
    assert [(g.strategy, g.mean["test_accuracy"]) for g in groups] == [("a", 0.9), ("b", 0.5)]


def test_markdown_table(make_run):
    rows = [read_run(make_run("a", summary=summary())), read_run(make_run("o", summary=old_summary()))]
    lines = rows_to_markdown(rows).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| run | strategy | seed | cost point | acc % |")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[1:] == ["litesnn", "0", "medium l1=0.15 l2=0.01 p=0.7", "95.56", "21.36", "45.84", "10.71",
                         "3", "4/2/2", "0.70", "100.2", "80.1", "920.4"]
    old = [c.strip() for c in lines[3].strip("|").split("|")]
    assert old[2] == "-" and old[7] == "-" and old[11:13] == ["-", "-"]
