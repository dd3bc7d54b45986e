"""Fig. 3 analogue: accuracy vs model size and Bit-SynOps over (l1, l2) settings.

Reads the summary.json / config.yaml of finished `lsnn search` runs and writes a table (Markdown,
printed) and a plot. Usage:
    python benchmarks/tradeoff_plot.py runs/sweep_l0 runs/sweep_l05 runs/sweep_l1 runs/sweep_l2 \
        -o benchmarks/results/tradeoff_digits.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/tradeoff.png"))
    args = ap.parse_args()
    rows = []
    for run in args.runs:
        s = json.loads((run / "summary.json").read_text())
        c = yaml.safe_load((run / "config.yaml").read_text())
        rows.append(dict(run=run.name, l1=c["l1"], l2=c["l2"], diff=c.get("differentiable_rate", False),
                         acc=100 * s["test_accuracy"], kb=s["model_size_bytes"] / 1e3,
                         bso=s["bit_synops"] / 1e6, T=s["T"], bits=s["bits_per_cell"]))
    print("| run | l1 | l2 | rate in COMP | test acc. (%) | model size (kB) | Bit-SynOps (M) | T | bits per cell |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['l1']:g} | {r['l2']:g} | {'differentiable' if r['diff'] else 'detached'} | "
              f"{r['acc']:.2f} | {r['kb']:.2f} | {r['bso']:.3f} | {r['T']} | {r['bits']} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for r in rows:
        label = f"l1={r['l1']:g}, l2={r['l2']:g}" + (" (diff. rate)" if r["diff"] else "")
        a.scatter(r["kb"], r["acc"], label=label)
        b.scatter(r["bso"], r["acc"], label=label)
    a.set_xlabel("model size (kB)")
    b.set_xlabel("Bit-SynOps per sample (M)")
    for ax in (a, b):
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    a.legend(fontsize=7)
    fig.suptitle("accuracy vs cost over (l1, l2): digits")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
