"""`lsnn compare RUN_DIR...`: one table, grouped cost points and Pareto fronts of finished runs.

Reads every run first: a bad run directory is a ConfigError (lsnn/cli.py prints it as one
`lsnn: error: RUN/summary.json: ...` line with exit 2) and nothing is written. The outputs
(compare.json, compare.md, pareto.png) are then published together or not at all.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import click

from lsnn.compare.pareto import PANELS, plot_pareto, strategy_fronts
from lsnn.compare.table import PointStats, RunRow, group_points, read_run, rows_to_markdown
from lsnn.io import atomic_paths, jsonable


def compare_report(rows: Sequence[RunRow], groups: Sequence[PointStats]) -> dict[str, Any]:
    """The compare.json content: runs, grouped points and each strategy's fronts (per cost axis)."""
    fronts: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for key, _, _ in PANELS:
        for strategy, front in strategy_fronts(groups, key).items():
            fronts.setdefault(strategy, {})[key] = [
                {"point": g.point, "test_accuracy": g.mean["test_accuracy"], key: g.mean[key]} for g in front]
    return {"runs": [r.to_dict() for r in rows], "points": [g.to_dict() for g in groups], "fronts": fronts}


@click.command("compare")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", default="compare", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for compare.json, compare.md and pareto.png.")
def compare_cmd(run_dirs: tuple[Path, ...], out_dir: Path) -> None:
    """Compare finished `lsnn search` runs: a table, mean/std over seeds per cost point, Pareto fronts."""
    rows = [read_run(d) for d in run_dirs]
    groups = group_points(rows)
    table = rows_to_markdown(rows)
    report = json.dumps(jsonable(compare_report(rows, groups)), indent=2, allow_nan=False) + "\n"
    outputs = [out_dir / "compare.json", out_dir / "compare.md", out_dir / "pareto.png"]
    with atomic_paths(*outputs) as (json_tmp, md_tmp, png_tmp):
        json_tmp.write_text(report)
        md_tmp.write_text(table)
        plot_pareto(groups, png_tmp)
    click.echo(table, nl=False)
    click.echo(f"wrote {', '.join(str(p) for p in outputs)}")
