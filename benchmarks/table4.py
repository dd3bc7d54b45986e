"""LitE-SNN's Table 4 re-measured: joint search vs the sequential A+P+Q+T baseline at the same
cost weights, from a Pareto study's compare.json (benchmarks/pareto.py). Per cost point and
seed, the accuracy difference (joint - sequential) and the model-size / Bit-SynOps ratios;
then their mean and population std over seeds.

    python benchmarks/table4.py benchmarks/results/pareto_digits.json --out benchmarks/results/table4_digits.json
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def pairs(runs: list[dict[str, Any]], a: str = "litesnn", b: str = "sequential") -> dict[str, list[dict]]:
    """Per cost point (the preset, first word of `point`): one record per seed both strategies ran."""
    by = {(r["strategy"], r["point"].split()[0], r["seed"]): r for r in runs}
    out: dict[str, list[dict]] = {}
    for (s, point, seed), ra in sorted(by.items(), key=lambda kv: (kv[0][1], str(kv[0][2]))):
        rb = by.get((b, point, seed))
        if s != a or rb is None:
            continue
        out.setdefault(point, []).append({
            "seed": seed, "acc_joint": ra["test_accuracy"], "acc_sequential": rb["test_accuracy"],
            "acc_diff_points": 100 * (ra["test_accuracy"] - rb["test_accuracy"]),
            "size_ratio": ra["model_size_bytes"] / rb["model_size_bytes"],
            "bit_synops_ratio": ra["bit_synops"] / rb["bit_synops"],
            "bits_joint": ra.get("bits_per_cell"), "bits_sequential": rb.get("bits_per_cell"),
            "T_joint": ra.get("T"), "T_sequential": rb.get("T")})
    return out


def summarise(recs: list[dict]) -> dict[str, Any]:
    """Mean and population std over seeds of the difference and the ratios."""
    out: dict[str, Any] = {"n": len(recs)}
    for k in ("acc_diff_points", "size_ratio", "bit_synops_ratio", "acc_joint", "acc_sequential"):
        v = [r[k] for r in recs]
        out[k] = {"mean": statistics.fmean(v), "std": statistics.pstdev(v) if len(v) > 1 else 0.0}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("compare_json")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    runs = json.loads(Path(a.compare_json).read_text())["runs"]
    table = {p: {"runs": recs, **summarise(recs)} for p, recs in pairs(runs).items()}
    Path(a.out).write_text(json.dumps(table, indent=2) + "\n")
    print("| cost point | joint acc % | sequential acc % | joint - sequential (points) | size joint / seq "
          "| Bit-SynOps joint / seq | seeds |")
    print("|---|---|---|---|---|---|---|")
    for p, t in table.items():
        f = lambda k, s=100.0: f"{s * t[k]['mean']:.2f} +- {s * t[k]['std']:.2f}"  # noqa: E731
        print(f"| {p} | {f('acc_joint')} | {f('acc_sequential')} | {f('acc_diff_points', 1.0)} | "
              f"{f('size_ratio', 1.0)} | {f('bit_synops_ratio', 1.0)} | {t['n']} |")


if __name__ == "__main__":
    main()
