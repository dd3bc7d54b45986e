"""Pareto study of the search strategies: every strategy at three cost points and several seeds,
each a full `lsnn search` run (search or not, retraining, export, compile and the deploy check),
then `lsnn compare` over all of them.

Runs go in --runs (one directory each); a finished run (summary.json) is not run again, so an
interrupted study continues where it stopped. --jobs runs at one torch thread each;
--report-only compares the runs finished so far without running any.

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

from lsnn.searcher.config import STRATEGIES

# cost point -> options; the searched strategies take the preset (l1, l2, p), the hand-designed
# stack its bits and T at the preset's p
COST_POINTS = {
    "large": ["--preset", "large"],
    "medium": ["--preset", "medium"],
    "small": ["--preset", "small"],
}
HAND = {"large": ["--hand-bits", "4", "-T", "4"], "medium": ["--hand-bits", "2", "-T", "3"],
        "small": ["--hand-bits", "1", "-T", "2"]}


def jobs(dataset: str, seeds: list[int], runs: Path, extra: list[str]) -> list[tuple[Path, list[str]]]:
    """(run directory, lsnn search arguments) of every strategy x cost point x seed."""
    out = []
    for seed in seeds:
        for point, opts in COST_POINTS.items():
            for strategy in STRATEGIES:
                d = runs / f"{strategy}_{point}_s{seed}"
                args = ["--dataset", dataset, "--strategy", strategy, "--seed", str(seed), "--num-threads", "1",
                        "--out", str(d), *opts, *(HAND[point] if strategy == "hand" else []), *extra]
                out.append((d, args))
    return out


def run_one(d: Path, args: list[str], lsnn: str) -> str:
    """Run (or resume) one study run; its output goes to d/run.log."""
    if (d / "summary.json").is_file():
        return f"{d.name}: done before"
    d.mkdir(parents=True, exist_ok=True)
    resume = ["--resume"] if (d / "config.yaml").is_file() else []
    with open(d / "run.log", "a") as log:
        rc = subprocess.call([lsnn, "search", *args, *resume], stdout=log, stderr=subprocess.STDOUT)
    return f"{d.name}: exit {rc}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--runs", default="runs/pareto_digits")
    ap.add_argument("--out", default="benchmarks/results/pareto_digits")
    ap.add_argument("--lsnn", default=str(Path(sys.executable).with_name("lsnn")))
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: compare the runs finished so far (into RUNS/compare; the results "
                         "files under --out are written only once every run is done)")
    ap.add_argument("extra", nargs="*", help="more lsnn search options (after --)")
    a = ap.parse_args()
    todo = jobs(a.dataset, [int(s) for s in a.seeds.split(",")], Path(a.runs), a.extra)
    if not a.report_only:
        with ThreadPoolExecutor(a.jobs) as pool:
            for line in pool.map(lambda j: run_one(j[0], j[1], a.lsnn), todo):
                print(line, flush=True)
    done = [str(d) for d, _ in todo if (d / "summary.json").is_file()]
    print(f"{len(done)} of {len(todo)} runs finished", flush=True)
    if not done:
        return 1
    folder = Path(a.runs) / "compare"
    rc = subprocess.call([a.lsnn, "compare", *done, "--out", str(folder)])
    if rc == 0 and len(done) == len(todo):       # benchmarks/results/pareto_<dataset>.{json,md,png}
        for src, ext in (("compare.json", ".json"), ("compare.md", ".md"), ("pareto.png", ".png")):
            shutil.copyfile(folder / src, a.out + ext)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
