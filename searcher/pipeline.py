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
from typing import Any, Callable

import numpy as np
import yaml

from lsnn import __version__
from lsnn.errors import ConfigError
from lsnn.io import atomic_write_text, write_json
from lsnn.searcher.config import RunConfig
from lsnn.searcher.run_log import append_epoch, read_log
from lsnn.searcher.space.genotype import Genotype

Echo = Callable[[str], None]


@dataclass
class Splits:
    """The three splits as NumPy arrays plus what the artifact records about the dataset."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: list[str]
    input_shape: tuple[int, int, int]


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


def load_splits(cfg: RunConfig) -> Splits:
    """Load train/val/test of cfg.dataset, with the stratified subsets a reduced-scale run asks for."""
    from lsnn.data.datasets import load_dataset, subset

    tr = load_dataset(cfg.dataset, cfg.data_dir, "train")
    va = load_dataset(cfg.dataset, cfg.data_dir, "val")
    te = load_dataset(cfg.dataset, cfg.data_dir, "test")
    if cfg.train_subset:
        tr = subset(tr, cfg.train_subset, cfg.seed)
        va = subset(va, max(1, min(len(va.y), cfg.train_subset // 5)), cfg.seed)
    if cfg.test_subset:
        te = subset(te, cfg.test_subset, cfg.seed)
    return Splits((tr.x, tr.y), (va.x, va.y), (te.x, te.y), list(tr.classes), tuple(tr.input_shape))


def _fill(cls: type, values: dict[str, Any]) -> Any:
    """Build dataclass `cls` from the keys of `values` it has (the rest keep their defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def resolved_hparams(cfg: RunConfig) -> dict[str, float]:
    """(l1, l2, p) from the preset (in cfg.cost_weights units), overridden by explicit values."""
    from lsnn.searcher.presets import get_preset

    pre = get_preset(cfg.preset)
    l1, l2 = pre.weights(cfg.cost_weights)
    return {"l1": l1 if cfg.l1 is None else cfg.l1,
            "l2": l2 if cfg.l2 is None else cfg.l2,
            "p": pre.p if cfg.p is None else cfg.p}


def run_search_stage(cfg: RunConfig, data: Splits, out: Path, resume: bool, echo: Echo) -> Genotype:
    """Supernet search + decode; writes search_log.jsonl, genotype.json and the plots."""
    from lsnn.searcher.plots import plot_search_history
    from lsnn.searcher.search.loop import SearchConfig, run_search

    gpath = out / "genotype.json"
    if resume and gpath.is_file():
        echo(f"search: already done, using {gpath}")
        return Genotype.load(gpath)
    hp = resolved_hparams(cfg)
    scfg = _fill(SearchConfig, {**cfg.to_dict(), **hp, "epochs": cfg.search_epochs, "a_lr": cfg.arch_lr,
                                "num_classes": len(data.classes), "input_shape": data.input_shape})
    log_path = out / "search_log.jsonl"
    echo(f"search: {cfg.dataset}, C={cfg.C}, {cfg.cells} cells (reductions {cfg.reductions}), T<={cfg.T}, "
         f"l1={hp['l1']:g}, l2={hp['l2']:g} ({cfg.cost_weights}), p={hp['p']:g}, {cfg.search_epochs} epochs")
    result = run_search(scfg, data.train, data.val, out, resume=resume,
                        on_epoch=lambda rec: append_epoch(log_path, rec))
    genotype = result.genotype
    genotype.save(gpath)
    history = read_log(log_path)
    if history:
        plot_search_history(history, out / "search_history.png")
    _plot_weights(result, out / "weight_distribution.png")
    return genotype


def _plot_weights(result: Any, path: Path) -> None:
    """Fig. 2(c) for the largest CompConv edge of the searched supernet."""
    from lsnn.searcher.plots import plot_weight_distribution

    w, w_mixed, mask, title = result.weight_distribution()
    plot_weight_distribution(w, w_mixed, mask, path, title=title)


def readout_axon_limit(cfg: RunConfig) -> int:
    """Input axons per core of the deploy target (its profile; loihi2 without one): where the
    compiler splits the readout, which a lava-mode retrain models."""
    from lsnn.hw_profiles.profile import load_profile

    prof = load_profile(path=cfg.deploy_profile) if cfg.deploy_profile else load_profile(
        target=cfg.deploy_target or "loihi2")
    return int(prof.input_axons_per_core)


def run_retrain_stage(cfg: RunConfig, genotype: Genotype, data: Splits, out: Path, resume: bool,
                      echo: Echo) -> tuple[Any, dict[str, Any]]:
    """Retrain the decoded network in deployable form; returns (net, result summary)."""
    from lsnn.searcher.deploy.retrain import RetrainConfig, run_retrain
    from lsnn.searcher.plots import plot_retrain_history

    C = cfg.C_retrain or cfg.C
    if C != genotype.C:
        genotype = dataclasses.replace(genotype, C=C)
    rcfg = _fill(RetrainConfig, {**cfg.to_dict(), "epochs": cfg.retrain_epochs, "lr": cfg.retrain_lr,
                                 "batch_size": cfg.retrain_batch_size,
                                 "readout_axon_limit": readout_axon_limit(cfg)})
    from lsnn.data.augment import get_augment

    augment = get_augment(cfg.augment)
    echo(f"retrain: C={C}, T={genotype.T}, bits per cell {[c.bits for c in genotype.cells]}, "
         f"p={genotype.prune_rate:g}, {cfg.retrain_epochs} epochs, augment {cfg.augment}")
    log_path = out / "retrain_log.jsonl"
    res = run_retrain(genotype, rcfg, data.train, data.val, data.test, out, resume=resume,
                      on_epoch=lambda rec: append_epoch(log_path, rec), augment=augment)
    history = read_log(log_path)
    if history:
        plot_retrain_history(history, out / "retrain_history.png")
    return res, {"genotype": genotype}


def run_pipeline(cfg: RunConfig, resume: bool = False, echo: Echo = print) -> PipelineResult:
    """Run the stages cfg.stage asks for and write the run directory."""
    import torch

    from lsnn.contract.artifact import save_artifact
    from lsnn.searcher.deploy.artifact_cost import artifact_cost
    from lsnn.searcher.deploy.export import export_artifact

    out = Path(cfg.out_dir)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    cfg_path = out / "config.yaml"
    if resume and cfg_path.is_file():
        old = yaml.safe_load(cfg_path.read_text()) or {}
        diff = {k for k in ("dataset", "C", "cells", "reductions", "T", "seed", "preset", "l1", "l2", "p",
                            "cost_weights")
                if old.get(k) != getattr(cfg, k)}
        if diff:
            raise ConfigError(f"{cfg_path}: --resume with different settings ({', '.join(sorted(diff))}); "
                              f"use a new --out directory")
    t0 = time.time()
    data = load_splits(cfg)                 # bad data fails here, before the run directory exists
    atomic_write_text(cfg_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    echo(f"data: {cfg.dataset} train {len(data.train[1])}, val {len(data.val[1])}, test {len(data.test[1])}, "
         f"input {data.input_shape}, {len(data.classes)} classes")
    if cfg.stage in ("all", "search"):
        genotype = run_search_stage(cfg, data, out, resume, echo)
        echo(f"search: decoded T={genotype.T}, bits per cell {[c.bits for c in genotype.cells]} -> {out / 'genotype.json'}")
    else:
        genotype = Genotype.load(cfg.genotype)  # validated: stage retrain needs it
        genotype.save(out / "genotype.json")
    if cfg.stage == "search":
        return PipelineResult(out, genotype, None, {"genotype": genotype.to_dict()})
    res, extra = run_retrain_stage(cfg, genotype, data, out, resume, echo)
    genotype = extra["genotype"]
    hp = resolved_hparams(cfg)
    metrics = {"test_accuracy": float(res.test_accuracy), "spike_rates": dict(res.test_spike_rates)}
    artifact = export_artifact(
        res.net, genotype,
        dataset_info={"name": cfg.dataset, "num_classes": len(data.classes),
                      "input_shape": list(data.input_shape), "classes": data.classes},
        metrics=metrics,
        train_info={"seed": cfg.seed, "epochs": cfg.retrain_epochs, "search_epochs": cfg.search_epochs,
                    "batch_size": cfg.retrain_batch_size, "preset": cfg.preset, **hp,
                    "cost_weights": cfg.cost_weights, "augment": cfg.augment,
                    "torch": str(torch.__version__), "lsnn": __version__})
    cost = artifact_cost(artifact)
    artifact["metrics"].update({k: cost[k] for k in ("model_size_bytes", "synops", "bit_synops", "energy_pj",
                                                     "s_ace", "ns_ace", "mults")})
    model_path = save_artifact(artifact, out / "model.pt")
    summary = {
        "dataset": cfg.dataset, "test_accuracy": metrics["test_accuracy"],
        "model_size_bytes": cost.get("model_size_bytes"), "bit_synops": cost.get("bit_synops"),
        "synops": cost.get("synops"), "energy_pj": cost.get("energy_pj"), "T": genotype.T,
        "bits_per_cell": [c.bits for c in genotype.cells], "prune_rate": genotype.prune_rate,
        "wall_seconds": round(time.time() - t0, 1), "model": str(model_path),
    }
    write_json(out / "summary.json", summary)
    return PipelineResult(out, genotype, model_path, summary, net=res.net, test=data.test, started=t0)
