"""The search-iteration benchmark on several Python/torch stacks, one after the other in one run
on the same machine, so the figures can be divided (e.g. the core's .venv against the torch 2.3
that .venv-lava carries for lava-dl).

    python benchmarks/bench_stacks.py --stack core=.venv/bin/python \\
        --stack torch2.3=.venv-lava/bin/python [--quick] [--extra-path DIR]

`--extra-path` is prepended to PYTHONPATH for every stack (.venv-lava lacks tqdm, which the
searcher imports; `pip install --target DIR tqdm` provides it). Writes
benchmarks/results/stacks.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT = HERE / "results" / "stacks.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stack", action="append", required=True, help="LABEL=PYTHON (repeat)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--extra-path", default=None)
    ap.add_argument("--variants", default="shared")
    ap.add_argument("--out", type=Path, default=RESULT)
    a = ap.parse_args(argv)
    rows = {}
    for spec in a.stack:
        label, py = spec.split("=", 1)
        env = dict(os.environ)
        if a.extra_path:
            env["PYTHONPATH"] = a.extra_path + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            cmd = [py, str(HERE / "bench_search_iter.py"), "--variants", a.variants, "--out", str(out)]
            print(f"{label}: {' '.join(cmd)}", flush=True)
            r = subprocess.run(cmd + (["--quick"] if a.quick else []), env=env)
            if r.returncode != 0:
                return r.returncode
            rows[label] = json.loads(out.read_text())
    first = next(iter(rows))
    base = rows[first]["runs"]["shared"]["seconds_per_iter"]
    summary = {label: {"python": r["python"], "torch": r.get("torch"), "numpy": r.get("numpy"),
                       "seconds_per_iter": r["runs"]["shared"]["seconds_per_iter"],
                       "peak_rss_gb": r["runs"]["shared"]["peak_rss_gb"],
                       f"time_over_{first}": r["runs"]["shared"]["seconds_per_iter"] / base}
               for label, r in rows.items()}
    for label, srow in summary.items():
        print(f"{label}: {srow}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"benchmark": "one search iteration per stack", "summary": summary,
                                 "runs": rows}, indent=2) + "\n")
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
