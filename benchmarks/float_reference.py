"""What a plain float CNN reaches on a dataset's split through lsnn's own loader: the ceiling to
hold an SNN's accuracy against at the same data and a similar budget.

    python benchmarks/float_reference.py --dataset gsc --data-dir ../shared/data/speech-commands-subset.tar.xz \
        --epochs 12,30 --augment none,speech

Each (epochs, augment) pair trains `searcher.deploy.teacher.FloatCNN` (conv-BN-ReLU 32/64/128,
AdamW one-cycle, label smoothing 0.1; seed 0) from scratch and reports val and test accuracy;
results go to `benchmarks/results/float_reference_<dataset>.json`, where a run of the same
settings replaces the earlier one and the others are kept.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from machine import cpu_description

OUT = Path(__file__).resolve().parent / "results"


def _one(data, num_classes: int, epochs: int, augment: str, widths: tuple[int, ...], seed: int) -> dict:
    """Train one float CNN and measure it on val and test."""
    from lsnn.data.augment import get_augment
    from lsnn.searcher.deploy.teacher import TeacherConfig, accuracy, train_teacher

    cfg = TeacherConfig(widths=widths, epochs=epochs, seed=seed)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        net, info = train_teacher(cfg, data.train, data.val, num_classes, tmp, augment=get_augment(augment),
                                  progress=False)
    return {"epochs": epochs, "augment": augment, "widths": list(widths), "seed": seed,
            "val_acc": round(info["val_acc"], 4), "test_acc": round(accuracy(net, data.test), 4),
            "seconds": round(time.time() - t0, 1)}


def _merged(path: Path, runs: list[dict]) -> list[dict]:
    """The runs already in `path` whose settings differ from every new run, then the new runs."""
    key = ("epochs", "augment", "widths", "seed")
    new = {tuple(str(r[k]) for k in key) for r in runs}
    old = json.loads(path.read_text())["runs"] if path.is_file() else []
    return [r for r in old if tuple(str(r[k]) for k in key) not in new] + runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", default="12,30", help="comma-separated epoch counts")
    ap.add_argument("--augment", default="none", help="comma-separated augmentation names (lsnn.data.augment)")
    ap.add_argument("--widths", default="32,64,128")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", default="", help="kept with each run (e.g. what else ran on the machine)")
    args = ap.parse_args()

    import torch

    from lsnn.searcher.config import build_config
    from lsnn.searcher.stages import load_splits

    torch.set_num_threads(args.threads)
    data = load_splits(build_config(args.dataset, {}, {"data_dir": args.data_dir}))
    num_classes = len(data.classes)
    widths = tuple(int(w) for w in args.widths.split(","))
    runs = []
    for aug in args.augment.split(","):
        for ep in (int(e) for e in args.epochs.split(",")):
            runs.append({**_one(data, num_classes, ep, aug, widths, args.seed), "note": args.note})
            print(json.dumps(runs[-1]), flush=True)
    path = OUT / f"float_reference_{args.dataset}.json"
    runs = _merged(path, runs)
    out = {"dataset": args.dataset, "train_samples": len(data.train[1]), "val_samples": len(data.val[1]),
           "test_samples": len(data.test[1]), "threads": args.threads, "cpu": cpu_description(), "runs": runs}
    OUT.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
