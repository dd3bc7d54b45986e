"""What the run's stages share: the data splits, the (l1, l2, p) a run resolves to, and the
search / retraining configs a RunConfig stands for (the strategies and the pipeline build
theirs here, so the same options mean the same thing in each)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from lsnn.searcher.config import RunConfig

Echo = Callable[[str], None]


@dataclass
class Splits:
    """The three splits as NumPy arrays plus what the artifact records about the dataset."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: list[str]
    input_shape: tuple[int, int, int]


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


def fill_dataclass(cls: type, values: dict[str, Any]) -> Any:
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


def search_config(cfg: RunConfig, data: Splits, **over: Any) -> Any:
    """The SearchConfig of `cfg` (its resolved l1, l2, p), with `over` replacing any field."""
    from lsnn.searcher.search.loop import SearchConfig

    return fill_dataclass(SearchConfig, {**cfg.to_dict(), **resolved_hparams(cfg), "epochs": cfg.search_epochs,
                                         "a_lr": cfg.arch_lr, "num_classes": len(data.classes),
                                         "input_shape": data.input_shape, **over})


def readout_axon_limit(cfg: RunConfig) -> int:
    """Input axons per core of the deploy target (its profile; loihi2 without one): where the
    compiler splits the readout, which a lava-mode retrain models."""
    from lsnn.hw_profiles.profile import load_profile

    prof = load_profile(path=cfg.deploy_profile) if cfg.deploy_profile else load_profile(
        target=cfg.deploy_target or "loihi2")
    return int(prof.input_axons_per_core)


def retrain_config(cfg: RunConfig, **over: Any) -> Any:
    """The RetrainConfig of `cfg`, with `over` replacing any field."""
    from lsnn.searcher.deploy.retrain import RetrainConfig

    return fill_dataclass(RetrainConfig, {**cfg.to_dict(), "epochs": cfg.retrain_epochs, "lr": cfg.retrain_lr,
                                          "batch_size": cfg.retrain_batch_size,
                                          "readout_axon_limit": readout_axon_limit(cfg), **over})
