"""The searcher's run: load data -> supernet search -> decode -> retrain -> export model.pt
(compiling and running it on the target is `lsnn.workflow`'s job).

Writes a run directory (config.yaml, search_log.jsonl, genotype.json, retrain_log.jsonl,
plots, model.pt, summary.json). Each stage checkpoints; `resume=True` continues where an
interrupted run stopped, and a finished stage is not run again.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import yaml

from lsnn import __version__
from lsnn.errors import ConfigError
from lsnn.io import atomic_write_text, write_json
from lsnn.searcher.config import RunConfig
from lsnn.searcher.run_log import append_epoch, read_log
from lsnn.searcher.space.genotype import Genotype
from lsnn.searcher.stages import Echo, Splits, load_splits, resolved_hparams, retrain_config
from lsnn.searcher.strategy import find_genotype

__all__ = ["PipelineResult", "load_splits", "run_pipeline", "run_retrain_stage"]


@dataclass
class PipelineResult:
    """What a run produced: its directory, the genotype, model.pt (None after --stage search), the
    summary written to summary.json, and for deployment the retrained net and the test split."""

    out_dir: Path
    genotype: Genotype
    model_path: Path | None
    summary: dict[str, Any]
    net: Any = None
    test: tuple[np.ndarray, np.ndarray] | None = None
    started: float = 0.0


def run_retrain_stage(cfg: RunConfig, genotype: Genotype, data: Splits, out: Path, resume: bool,
                      echo: Echo) -> tuple[Any, dict[str, Any]]:
    """Retrain the decoded network in deployable form; returns (net, result summary)."""
    from lsnn.searcher.deploy.retrain import run_retrain
    from lsnn.searcher.plots import plot_retrain_history

    C = cfg.C_retrain or cfg.C
    if C != genotype.C:
        genotype = dataclasses.replace(genotype, C=C)
    rcfg = retrain_config(cfg)
    from lsnn.data.augment import get_augment

    augment = get_augment(cfg.augment)
    echo(f"retrain: C={C}, T={genotype.T}, bits per cell {[c.bits for c in genotype.cells]}, "
         f"p={genotype.prune_rate:g}, {cfg.retrain_epochs} epochs, augment {cfg.augment}")
    teacher, teacher_info = _teacher(cfg, genotype, data, out, augment, echo)
    log_path = out / "retrain_log.jsonl"
    res = run_retrain(genotype, rcfg, data.train, data.val, data.test, out, resume=resume,
                      on_epoch=lambda rec: append_epoch(log_path, rec), augment=augment, teacher=teacher)
    history = read_log(log_path)
    if history:
        plot_retrain_history(history, out / "retrain_history.png")
    return res, {"genotype": genotype, "teacher": teacher_info}


def _teacher(cfg: RunConfig, genotype: Genotype, data: Splits, out: Path, augment: Any,
             echo: Echo) -> tuple[Any, Optional[dict[str, Any]]]:
    """The float CNN teacher when `distill_weight` > 0 (trained on the train split, saved as
    teacher.pt so a resumed run distils from the same one), else (None, None)."""
    if cfg.distill_weight <= 0:
        return None, None
    from lsnn.searcher.deploy.teacher import TeacherConfig, train_teacher

    tcfg = TeacherConfig(epochs=cfg.teacher_epochs, seed=cfg.seed)
    teacher, info = train_teacher(tcfg, data.train, data.val, genotype.num_classes, out, augment=augment)
    val = "n/a (no val split)" if info["val_acc"] is None else f"{info['val_acc']:.4f}"
    echo(f"teacher: float CNN {list(tcfg.widths)}, {tcfg.epochs} epochs, val accuracy "
         f"{val}; distillation weight {cfg.distill_weight:g}, temperature {cfg.distill_temperature:g}")
    return teacher, {**info, "epochs": tcfg.epochs, "widths": list(tcfg.widths)}


def _check_resume(cfg: RunConfig, cfg_path: Path) -> None:
    """A resumed run must keep the settings that shaped what it has already written."""
    old = yaml.safe_load(cfg_path.read_text()) or {}
    diff = {k for k in ("dataset", "C", "cells", "reductions", "T", "seed", "preset", "l1", "l2", "p",
                        "cost_weights", "strategy")
            if old.get(k) != getattr(cfg, k)}
    if diff:
        raise ConfigError(f"{cfg_path}: --resume with different settings ({', '.join(sorted(diff))}); "
                          f"use a new --out directory")


def export_model(cfg: RunConfig, res: Any, genotype: Genotype, data: Splits, out: Path
                 ) -> tuple[Path, dict[str, Any]]:
    """Write model.pt for the retrained net, its cost-model figures in its metrics; returns the
    path and the summary's figures."""
    import torch

    from lsnn.contract.artifact import save_artifact
    from lsnn.searcher.deploy.artifact_cost import artifact_cost
    from lsnn.searcher.deploy.export import export_artifact

    hp = resolved_hparams(cfg)
    metrics = {"test_accuracy": float(res.test_accuracy), "spike_rates": dict(res.test_spike_rates)}
    artifact = export_artifact(
        res.net, genotype,
        dataset_info={"name": cfg.dataset, "num_classes": len(data.classes),
                      "input_shape": list(data.input_shape), "classes": data.classes},
        metrics=metrics,
        train_info={"seed": cfg.seed, "epochs": cfg.retrain_epochs, "search_epochs": cfg.search_epochs,
                    "batch_size": cfg.retrain_batch_size, "preset": cfg.preset, **hp,
                    "cost_weights": cfg.cost_weights, "augment": cfg.augment, "strategy": cfg.strategy,
                    "distill_weight": cfg.distill_weight,
                    "torch": str(torch.__version__), "lsnn": __version__})
    cost = artifact_cost(artifact)
    artifact["metrics"].update({k: cost[k] for k in ("model_size_bytes", "synops", "bit_synops", "energy_pj",
                                                     "s_ace", "ns_ace", "mults")})
    model_path = save_artifact(artifact, out / "model.pt")
    return model_path, {
        "dataset": cfg.dataset, "test_accuracy": metrics["test_accuracy"],
        "model_size_bytes": cost.get("model_size_bytes"), "bit_synops": cost.get("bit_synops"),
        "synops": cost.get("synops"), "energy_pj": cost.get("energy_pj"), "T": genotype.T,
        "bits_per_cell": [c.bits for c in genotype.cells], "prune_rate": genotype.prune_rate,
        "strategy": cfg.strategy, "seed": cfg.seed, "preset": cfg.preset, **hp}


def run_pipeline(cfg: RunConfig, resume: bool = False, echo: Echo = print) -> PipelineResult:
    """Run the stages cfg.stage asks for and write the run directory."""
    import torch

    from lsnn.machine import cpu_description

    out = Path(cfg.out_dir)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    cfg_path = out / "config.yaml"
    if resume and cfg_path.is_file():
        _check_resume(cfg, cfg_path)
    t0 = time.time()
    if cfg.stage != "search":
        retrain_config(cfg).validate()      # bad retraining settings fail here, not after the search
    data = load_splits(cfg)                 # bad data fails here, before the run directory exists
    atomic_write_text(cfg_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    echo(f"data: {cfg.dataset} train {len(data.train[1])}, val {len(data.val[1])}, test {len(data.test[1])}, "
         f"input {data.input_shape}, {len(data.classes)} classes")
    t_search = time.time()
    if cfg.stage in ("all", "search"):
        genotype = find_genotype(cfg, data, out, resume, echo)
        echo(f"search: decoded T={genotype.T}, bits per cell {[c.bits for c in genotype.cells]} -> {out / 'genotype.json'}")
    else:
        genotype = Genotype.load(cfg.genotype)  # validated: stage retrain needs it
        genotype.save(out / "genotype.json")
    search_seconds = round(time.time() - t_search, 1)
    if cfg.stage == "search":
        return PipelineResult(out, genotype, None, {"genotype": genotype.to_dict()})
    t_retrain = time.time()
    res, extra = run_retrain_stage(cfg, genotype, data, out, resume, echo)
    retrain_seconds = round(time.time() - t_retrain, 1)
    model_path, summary = export_model(cfg, res, extra["genotype"], data, out)
    if extra["teacher"] is not None:
        summary["teacher"] = extra["teacher"]
    summary.update({"search_seconds": search_seconds, "retrain_seconds": retrain_seconds,
                    "retrain_epoch_seconds": round(res.epoch_seconds, 1),
                    "wall_seconds": round(time.time() - t0, 1), "model": str(model_path),
                    "train_samples": len(data.train[1]), "val_samples": len(data.val[1]),
                    "test_samples": len(data.test[1]), "cpu": cpu_description(),
                    "threads": torch.get_num_threads()})
    write_json(out / "summary.json", summary)
    return PipelineResult(out, extra["genotype"], model_path, summary, net=res.net, test=data.test, started=t0)
