"""Pareto study of the search strategies: every strategy at three cost points and several seeds,
each a full `lsnn search` run (search or not, retraining, export, compile and the deploy check),
then `lsnn compare` over all of them.

Runs go in --runs (one directory each, with checkpoints: not committed). A finished run leaves
a record, its summary.json, config.yaml, genotype.json and retrain_log.jsonl, in --records
(default: --out + "_runs", meant to be committed): a run with a record is not run again, an
unfinished one resumes, so a study longer than one machine session continues on the next from
the committed records. --jobs runs at one torch thread each; --report-only compares the
recorded runs without running any.

    python benchmarks/pareto.py --dataset digits --seeds 0,1 --jobs 2 \
        --runs runs/pareto_digits --out benchmarks/results/pareto_digits

writes benchmarks/results/pareto_digits.json (one row per run, the means and spreads per cost
point, the fronts), .md (the table) and .png (the fronts).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsnn.searcher.presets import PRESETS

# the strategies of the study; spikenas joins with --strategies and a memory budget per
# cost point (--spikenas-budgets)
STRATEGIES = ("litesnn", "sequential", "random", "hand")
# cost point -> options; the searched strategies take the preset (l1, l2, p), the hand-designed
# stack its bits and T at the preset's p
COST_POINTS = {
    "large": ["--preset", "large"],
    "medium": ["--preset", "medium"],
    "small": ["--preset", "small"],
}


def _scaled_medium(factor: float) -> list[str]:
    """Medium's p with its relative l1 / l2 times `factor` (options after --preset win)."""
    m = PRESETS["medium"]
    return ["--preset", "medium", "--l1", f"{m.l1_rel * factor:g}", "--l2", f"{m.l2_rel * factor:g}"]


# between large and medium: where the joint search had no run on CIFAR-10
COST_POINTS.update(medium_half=_scaled_medium(1 / 2), medium_fifth=_scaled_medium(1 / 5))
STUDY_POINTS = ("large", "medium", "small")     # the study's three; the others with --points
HAND = {"large": ["--hand-bits", "4", "-T", "4"], "medium": ["--hand-bits", "2", "-T", "3"],
        "small": ["--hand-bits", "1", "-T", "2"]}


def strategy_options(strategy: str, point: str, budgets: dict[str, float]) -> list[str]:
    """What a strategy adds to the cost point's options: hand its bits and T, spikenas its budget."""
    if strategy == "hand":
        if point not in HAND:
            raise SystemExit(f"pareto.py: the hand-designed stack has no bits and T for cost point '{point}'")
        return HAND[point]
    if strategy == "spikenas":
        if point not in budgets:
            raise SystemExit(f"pareto.py: --spikenas-budgets has no budget for cost point '{point}'")
        return ["--memory-budget-kb", f"{budgets[point]:g}"]
    return []


def jobs(dataset: str, seeds: list[int], runs: Path, extra: list[str], strategies: tuple[str, ...] = STRATEGIES,
         budgets: dict[str, float] | None = None, points: tuple[str, ...] = STUDY_POINTS
         ) -> list[tuple[Path, list[str]]]:
    """(run directory, lsnn search arguments) of every strategy x cost point x seed."""
    unknown = [p for p in points if p not in COST_POINTS]
    if unknown:
        raise SystemExit(f"pareto.py: unknown cost point(s) {', '.join(unknown)} (known: {', '.join(COST_POINTS)})")
    out = []
    for seed in seeds:
        for point in points:
            opts = COST_POINTS[point]
            for strategy in strategies:
                d = runs / f"{strategy}_{point}_s{seed}"
                args = ["--dataset", dataset, "--strategy", strategy, "--seed", str(seed), "--num-threads", "1",
                        "--out", str(d), *opts, *strategy_options(strategy, point, budgets or {}), *extra]
                out.append((d, args))
    return out


RECORD_FILES = ("summary.json", "config.yaml", "genotype.json", "retrain_log.jsonl",
                "sequential.json", "random_search.json")   # the last two: how those strategies chose


def record(d: Path, records: Path) -> None:
    """Copy a finished run's small files (what `lsnn compare` reads, and how it got there) to
    records/<run>; summary.json last, so that a record with a summary is complete."""
    dst = records / d.name
    dst.mkdir(parents=True, exist_ok=True)
    for name in sorted(RECORD_FILES, key=lambda n: n == "summary.json"):
        if (d / name).is_file():
            shutil.copyfile(d / name, dst / name)


def run_one(d: Path, args: list[str], lsnn: str, records: Path) -> str:
    """Run (or resume) one study run unless it has a record; its output goes to d/run.log."""
    if (records / d.name / "summary.json").is_file():
        return f"{d.name}: recorded before"
    if not (d / "summary.json").is_file():
        d.mkdir(parents=True, exist_ok=True)
        resume = ["--resume"] if (d / "config.yaml").is_file() else []
        with open(d / "run.log", "a") as log:
            rc = subprocess.call([lsnn, "search", *args, *resume], stdout=log, stderr=subprocess.STDOUT)
        if rc != 0:
            return f"{d.name}: exit {rc}"
    record(d, records)
    return f"{d.name}: done"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", default="runs/pareto_digits")
    ap.add_argument("--out", default="benchmarks/results/pareto_digits")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--points", default=",".join(STUDY_POINTS), help=f"cost points, of: {', '.join(COST_POINTS)}")
    ap.add_argument("--spikenas-budgets", default="",
                    help="memory budget (kB) per cost point for --strategies spikenas: large=40,medium=12,small=6")
    ap.add_argument("--records", default=None,
                    help="folder of the finished runs' records (default: OUT_runs)")
    ap.add_argument("--lsnn", default=str(Path(sys.executable).with_name("lsnn")))
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: compare the recorded runs (into RUNS/compare; the results "
                         "files under --out are written only once every run is recorded)")
    ap.add_argument("extra", nargs="*", help="more lsnn search options (after --)")
    a = ap.parse_args()
    try:
        budgets = {k: float(v) for k, v in (item.split("=") for item in a.spikenas_budgets.split(",") if item)}
    except ValueError:
        ap.error(f"--spikenas-budgets: expected POINT=KB,... (e.g. large=40,medium=12,small=6), "
                 f"got '{a.spikenas_budgets}'")
    todo = jobs(a.dataset, [int(s) for s in a.seeds.split(",")], Path(a.runs), a.extra,
                tuple(a.strategies.split(",")), budgets, tuple(a.points.split(",")))
    records = Path(a.records or a.out + "_runs")
    if not a.report_only:
        with ThreadPoolExecutor(a.jobs) as pool:
            for line in pool.map(lambda j: run_one(j[0], j[1], a.lsnn, records), todo):
                print(line, flush=True)
    done = [str(records / d.name) for d, _ in todo if (records / d.name / "summary.json").is_file()]
    # the report covers every recorded run, also those of earlier invocations (other strategies)
    reported = sorted(str(r.parent) for r in records.glob("*/summary.json"))
    print(f"{len(done)} of {len(todo)} runs finished", flush=True)
    if not done:
        return 1
    folder = Path(a.runs) / "compare"
    rc = subprocess.call([a.lsnn, "compare", *reported, "--out", str(folder)])
    if rc == 0 and len(done) == len(todo):       # benchmarks/results/pareto_<dataset>.{json,md,png}
        for src, ext in (("compare.json", ".json"), ("compare.md", ".md"), ("pareto.png", ".png")):
            shutil.copyfile(folder / src, a.out + ext)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
