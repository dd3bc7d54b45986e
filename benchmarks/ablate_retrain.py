"""What holds accuracy back: retrain one fixed genotype under named variants of the recipe.

Every variant starts from the same genotype, seed and epoch budget and changes one thing
(RetrainConfig fields, the augmentation, the retrain width); the table says what each one is
worth on the test split. Variants run in `--jobs` processes of one thread each (deterministic for
a seed, so the accuracies do not depend on --jobs; the seconds do).

    python benchmarks/ablate_retrain.py --genotype runs/digits/genotype.json --dataset digits \
        --epochs 40 --variants base,shift,ls,float --out benchmarks/results/ablation_digits.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

# examples/gsc_subset.yaml's retraining recipe, the base of the gsc_* variants
_GSC: dict[str, Any] = {"optimizer": "adamw", "weight_decay": 1e-2, "label_smoothing": 0.1, "freeze_epochs": 0.5}
# name -> (what it changes, overrides: RetrainConfig fields, plus "augment" and "C")
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "base": ("integer LIF, no augmentation, SGD cosine, p from step 0", {}),
    "shift": ("+ random 1-pixel shifts", {"augment": "shift"}),
    "crop_flip": ("+ pad-4 crop and flip", {"augment": "crop_flip"}),
    "cutout": ("+ crop, flip and cutout", {"augment": "crop_flip_cutout"}),
    "speech": ("+ time shift and SpecAugment masks", {"augment": "speech"}),
    "ls": ("+ label smoothing 0.1", {"label_smoothing": 0.1}),
    "warmup": ("+ 3 warm-up epochs", {"warmup_epochs": 3}),
    "float": ("float LIF throughout (not deploy-exact)", {"lif_mode": "float"}),
    "float_warm": ("float LIF for the first 3/4, then the integer LIF", {"float_epochs": 0.75}),
    "ramp": ("pruning ramped from 0 to p over the first 1/4", {"prune_ramp_epochs": 0.25}),
    "no_mask_learning": ("mask fixed at |W| of the init (no HYDRA scores)", {"learn_mask": False}),
    "lr_x2": ("lr x 2", {"lr_scale": 2.0}),
    "lr_half": ("lr / 2", {"lr_scale": 0.5}),
    "wide": ("retrain width x 2", {"C_scale": 2}),
    "no_aux": ("no auxiliary head", {"aux_weight": 0.0}),
    "wide_ls": ("retrain width x 2 + label smoothing 0.1", {"C_scale": 2, "label_smoothing": 0.1}),
    "wide3_ls": ("retrain width x 3 + label smoothing 0.1", {"C_scale": 3, "label_smoothing": 0.1}),
    "wide_ls_shift": ("retrain width x 2 + label smoothing 0.1 + 1-pixel shifts",
                      {"C_scale": 2, "label_smoothing": 0.1, "augment": "shift"}),
    "wide_ls_wd": ("retrain width x 2 + label smoothing 0.1 + weight decay 1e-3",
                   {"C_scale": 2, "label_smoothing": 0.1, "weight_decay": 1e-3}),
    "readout_lr20": ("readout lr x 20", {"readout_lr_scale": 20.0}),
    "gsc_recipe": ("readout lr x 20 + label smoothing 0.1 + time shift and SpecAugment",
                   {"readout_lr_scale": 20.0, "label_smoothing": 0.1, "augment": "speech"}),
    "adamw": ("AdamW lr 2e-3, weight decay 1e-2", {"optimizer": "adamw", "lr_scale": 0.04, "weight_decay": 1e-2}),
    "adamw_speech": ("AdamW + time shift and SpecAugment + label smoothing",
                     {"optimizer": "adamw", "lr_scale": 0.04, "weight_decay": 1e-2, "augment": "speech",
                      "label_smoothing": 0.1}),
    "adamw_dense": ("AdamW, no pruning (p = 0)", {"optimizer": "adamw", "lr_scale": 0.04, "weight_decay": 1e-2,
                                                  "prune_rate": 0.0}),
    "adamw_dense_float": ("AdamW, no pruning, float LIF", {"optimizer": "adamw", "lr_scale": 0.04, "weight_decay": 1e-2,
                                                           "prune_rate": 0.0, "lif_mode": "float"}),
    "wide_ls_wd_half_frozen": ("the digits default, with the last half of the epochs in the deployed form",
                               {"C_scale": 2, "label_smoothing": 0.1, "weight_decay": 1e-3, "freeze_epochs": 0.5}),
    "gsc_half_deployed": ("examples/gsc_subset.yaml's recipe: AdamW, wd 1e-2, ls 0.1, last half in the deployed form",
                          _GSC),
    "gsc_all_deployed": ("the same, every epoch in the deployed form (BN statistics and mask frozen)",
                         {**_GSC, "freeze_epochs": 1.0}),
    "gsc_float": ("the gsc recipe with the float LIF throughout (not deploy-exact)", {**_GSC, "lif_mode": "float"}),
    "gsc_dense": ("the gsc recipe without pruning (p = 0)", {**_GSC, "prune_rate": 0.0}),
    "gsc_float_dense": ("the gsc recipe, float LIF, no pruning", {**_GSC, "lif_mode": "float", "prune_rate": 0.0}),
    "gsc_parts": ("the gsc recipe with readout parts of <= 300 inputs (no part can saturate at T = 3)",
                  {**_GSC, "readout_axon_limit": 300}),
    "gsc_dense_parts": ("the gsc recipe, no pruning, readout parts of <= 300 inputs",
                        {**_GSC, "prune_rate": 0.0, "readout_axon_limit": 300}),
    "gsc_wide_dense_parts": ("the gsc recipe at retrain width x 2, no pruning, readout parts of <= 300 inputs",
                             {**_GSC, "prune_rate": 0.0, "readout_axon_limit": 300, "C_scale": 2}),
    "gsc_wide_float_dense": ("the gsc recipe at retrain width x 2, float LIF, no pruning",
                             {**_GSC, "lif_mode": "float", "prune_rate": 0.0, "C_scale": 2}),
    "gsc_kd": ("the gsc recipe + distillation from a float CNN teacher (w 0.5, t 4)",
               {**_GSC, "distill_weight": 0.5}),
    "wide_ls_wd_kd": ("the digits recipe + distillation from a float CNN teacher (w 0.5, t 4)",
                      {"C_scale": 2, "label_smoothing": 0.1, "weight_decay": 1e-3, "distill_weight": 0.5}),
    "wide_ls_wd_kd9": ("the digits recipe + distillation (w 0.9, t 4)",
                       {"C_scale": 2, "label_smoothing": 0.1, "weight_decay": 1e-3, "distill_weight": 0.9}),
    "digits_p0": ("the digits recipe without pruning (p = 0)",
                  {"C_scale": 2, "label_smoothing": 0.1, "weight_decay": 1e-3, "prune_rate": 0.0}),
    "digits_C48": ("the digits recipe at retrain width x 6",
                   {"C_scale": 6, "label_smoothing": 0.1, "weight_decay": 1e-3}),
    "digits_C32_p5": ("the digits recipe at retrain width x 4, prune rate 0.5",
                      {"C_scale": 4, "label_smoothing": 0.1, "weight_decay": 1e-3, "prune_rate": 0.5}),
    "digits_4bit": ("the digits recipe with every cell at 4 bits",
                    {"C_scale": 2, "label_smoothing": 0.1, "weight_decay": 1e-3, "bits": 4}),
    "digits_T6": ("the digits recipe at T = 6",
                  {"C_scale": 2, "label_smoothing": 0.1, "weight_decay": 1e-3, "T": 6}),
    "digits_C32": ("the digits recipe at retrain width x 4",
                   {"C_scale": 4, "label_smoothing": 0.1, "weight_decay": 1e-3}),
    "recipe": ("shift + ls 0.1 + 3 warm-up + float warm 3/4",
               {"augment": "shift", "label_smoothing": 0.1, "warmup_epochs": 3, "float_epochs": 0.75}),
}
FRACTION_KEYS = ("float_epochs", "prune_ramp_epochs", "freeze_epochs")


def _one(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    from lsnn.data.augment import get_augment
    from lsnn.searcher.checkpoint import load_checkpoint
    from lsnn.searcher.config import build_config
    from lsnn.searcher.deploy.retrain import CKPT_NAME, CKPT_VERSION, RetrainConfig, evaluate, run_retrain
    from lsnn.searcher.deploy.teacher import TeacherConfig, train_teacher
    from lsnn.searcher.space.genotype import Genotype
    from lsnn.searcher.stages import load_splits, readout_axon_limit

    torch.set_num_threads(1)
    over = dict(job["overrides"])
    cfg = build_config(job["dataset"], {}, {"data_dir": job["data_dir"], "train_subset": job["train_subset"],
                                           "test_subset": job["test_subset"]})
    data = load_splits(cfg)
    g = Genotype.load(job["genotype"])
    g = dataclasses.replace(g, C=int(g.C * over.pop("C_scale", 1)), prune_rate=over.pop("prune_rate", g.prune_rate),
                            T=int(over.pop("T", g.T)))
    if "bits" in over:
        bits = int(over.pop("bits"))
        g = dataclasses.replace(g, cells=tuple(dataclasses.replace(c, bits=bits) for c in g.cells))
    epochs = job["epochs"]
    aug_name = over.pop("augment", "none")
    lr = job["lr"] * over.pop("lr_scale", 1.0)
    for k in FRACTION_KEYS:
        if k in over:
            over[k] = int(round(over[k] * epochs))
    rcfg = RetrainConfig(epochs=epochs, lr=lr, batch_size=job["batch_size"], seed=job["seed"], progress=False,
                         **{"lif_mode": "lava", "readout_axon_limit": readout_axon_limit(cfg), **over})
    t0 = time.time()
    work = Path(job["work"]) / f"{job['name']}_s{job['seed']}"
    teacher, teacher_info = None, None
    if rcfg.distill_weight > 0:
        teacher, teacher_info = train_teacher(TeacherConfig(seed=job["seed"]), data.train, data.val,
                                              g.num_classes, work, augment=get_augment(aug_name), progress=False)
    res = run_retrain(g, rcfg, data.train, data.val, data.test, work, augment=get_augment(aug_name), teacher=teacher)
    last = res.history[-1]
    res.net.load_state_dict(load_checkpoint(work / CKPT_NAME, "retrain", CKPT_VERSION)["net"])   # the last epoch's
    test_last = evaluate(res.net, data.test)[0] if data.test is not None else None
    return {"variant": job["name"], "what": job["what"], "test_acc": res.test_accuracy, "test_acc_last_epoch": test_last,
            "best_val_acc": res.best_val_acc, "best_epoch": res.best_epoch, "final_train_acc": last["train_acc"],
            "seconds": round(time.time() - t0, 1), "seed": job["seed"], "teacher": teacher_info,
            "seconds_per_epoch": {m: round(sum(r["seconds"] for r in res.history if r.get("lif_mode") == m)
                                           / max(1, sum(r.get("lif_mode") == m for r in res.history)), 2)
                                  for m in ("float", "lava")},
            "settings": {"epochs": epochs, "lr": lr, "augment": aug_name, "C": g.C, **over}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genotype", required=True)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--data-dir")
    ap.add_argument("--train-subset", type=int)
    ap.add_argument("--test-subset", type=int)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", help="comma-separated seeds (each variant runs once per seed); overrides --seed")
    ap.add_argument("--variants", default="base,shift,ls,float,float_warm,ramp,lr_x2,wide,recipe")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", default="runs/ablation")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    names = [v for v in a.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"ablate_retrain: unknown variant(s) {', '.join(unknown)} (known: {', '.join(VARIANTS)})")
    seeds = [int(v) for v in a.seeds.split(",")] if a.seeds else [a.seed]
    jobs = [{"name": n, "what": VARIANTS[n][0], "overrides": VARIANTS[n][1], "dataset": a.dataset,
             "data_dir": a.data_dir, "train_subset": a.train_subset, "test_subset": a.test_subset,
             "genotype": a.genotype, "epochs": a.epochs, "lr": a.lr, "batch_size": a.batch_size, "seed": seed,
             "work": f"{a.work}/{a.dataset}"} for n in names for seed in seeds]
    rows = []
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        for row in pool.map(_one, jobs):
            rows.append(row)
            print(f"{row['variant']:>16} s{row['seed']}: test {100 * row['test_acc']:.2f} % (last epoch "
                  f"{100 * row['test_acc_last_epoch']:.2f} %)  (val {100 * row['best_val_acc']:.2f} % "
                  f"at epoch {row['best_epoch']}, train {100 * row['final_train_acc']:.1f} %, {row['seconds']} s)",
                  flush=True)
    from machine import cpu_description

    model = cpu_description()
    out = {"dataset": a.dataset, "genotype": a.genotype, "epochs": a.epochs, "seeds": seeds, "jobs": a.jobs,
           "threads_per_job": 1, "cpu": model, "python": platform.python_version(), "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print("\n| variant | what | test acc. (%) | best val (%) | final train (%) | s/epoch float | s/epoch integer |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        s = r["seconds_per_epoch"]
        print(f"| {r['variant']} | {r['what']} | {100 * r['test_acc']:.2f} | {100 * r['best_val_acc']:.2f} | "
              f"{100 * r['final_train_acc']:.1f} | {s['float'] or '-'} | {s['lava'] or '-'} |")


if __name__ == "__main__":
    main()
