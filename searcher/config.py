"""The configuration of one `lsnn search` run: defaults per dataset, YAML file, CLI overrides.

Precedence: dataset defaults < preset (l1, l2, p) < YAML config file < command-line options.
Input files named in a config file (`INPUT_PATH_KEYS`) are relative to that file; `out_dir` and
command-line paths are relative to the working directory.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lsnn.errors import ConfigError

STAGES = ("all", "search", "retrain")
INPUT_PATH_KEYS = ("data_dir", "genotype", "deploy_profile")
STRATEGIES = ("litesnn", "sequential", "random", "hand", "spikenas")


@dataclass
class RunConfig:
    """Everything one search -> decode -> retrain run needs (see `lsnn search --help`)."""

    dataset: str = "digits"
    data_dir: str | None = None
    out_dir: str = "runs/digits"
    preset: str = "medium"
    l1: float | None = None          # None: take it from the preset
    l2: float | None = None
    p: float | None = None
    T: int = 4                        # candidate timesteps 1..T
    C: int = 8                        # search channels
    C_retrain: int | None = None      # retrain channels (None: same as C)
    cells: int = 3
    reductions: list[int] = field(default_factory=lambda: [1, 2])
    search_epochs: int = 10
    retrain_epochs: int = 20
    batch_size: int = 32
    retrain_batch_size: int = 50
    retrain_lr: float = 0.025         # SGD lr of retraining, cosine to 0 (paper: 0.025)
    psi_warmup_epochs: int = 2
    arch_warmup_epochs: int = 0       # search: first epochs train the weights only (the architecture waits)
    max_skips: int | None = None      # decoding: at most this many skip edges per cell (P-DARTS); None: no cap
    arch_lr: float = 3e-4             # Adam lr of alpha, beta, mask scores, psi (paper: 3e-4)
    arch_data: str = "same"
    differentiable_rate: bool = False
    lif_mode: str = "lava"            # retraining neuron: "lava" (integer, bit-exact to the chip) or "float" (Eq. 1)
    train_subset: int | None = None   # stratified subset of the training split (reduced-scale runs)
    test_subset: int | None = None
    augment: str = "none"             # training augmentation (lsnn.data.augment: none, shift, crop_flip, ...)
    label_smoothing: float = 0.0
    weight_decay: float = 3e-4        # retraining's, on conv / FC weights
    readout_lr_scale: float = 1.0     # retraining: lr multiplier of the FC readout
    optimizer: str = "sgd"            # retraining: "sgd" (momentum 0.9, the paper's) or "adamw"
    warmup_epochs: int = 0            # retraining lr warm-up epochs
    freeze_epochs: int | None = None  # retraining: last epochs in the deployed form (BN and mask frozen; None: 10 %)
    keep: str = "best_val"            # retraining: the epoch whose weights are saved: "best_val" or "last"
    float_epochs: int = 0             # retraining with lif_mode lava: first epochs with the float LIF
    prune_ramp_epochs: int = 0        # retraining: prune rate ramps 0 -> p over these epochs
    distill_weight: float = 0.0       # retraining: weight of a float CNN teacher's soft targets (0: no teacher)
    distill_temperature: float = 4.0  # retraining: softmax temperature of the distillation term
    recalibrate_samples: int = 0      # retraining: re-estimate BN statistics for the deployed form on this many samples at the freeze switch
    teacher_epochs: int = 12          # epochs of the float teacher (searcher/deploy/teacher.py), when used
    cost_weights: str = "relative"    # l1/l2 relative to the supernet's initial size / Bit-SynOps, or "absolute"
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = None
    deploy_target: str | None = "loihi2"   # after retraining: compile + run for this target (None: stop at model.pt)
    deploy_profile: str | None = None  # ... or a hardware-profile YAML instead of a bundled target
    lava_samples: int = 8             # samples the deploy check runs on Lava's simulator
    stage: str = "all"
    genotype: str | None = None       # for --stage retrain
    strategy: str = "litesnn"         # how the genotype is found (lsnn.searcher.strategy)
    hand_bits: int = 4                # strategy hand: weight bits of every cell
    hand_nodes: int = 4               # strategy hand: conv layers per cell (a chain; the cell output concatenates them)
    random_candidates: int | None = None   # strategy random: genotypes tried (None: the search's compute)
    proxy_epochs: int = 2             # strategy random: training epochs per candidate
    memory_budget_kb: float | None = None  # strategy spikenas: model-size budget (cost model, kB; None: none)

    def validate(self, source: str = "config") -> "RunConfig":
        if isinstance(self.augment, bool):      # configs written before augment named one
            self.augment = "crop_flip" if self.augment else "none"
        for f in fields(self):
            _check_type(source, f.name, str(f.type), getattr(self, f.name))
        if self.stage not in STAGES:
            raise ConfigError(f"{source}: stage '{self.stage}' is not one of {', '.join(STAGES)}")
        if self.stage == "retrain" and not self.genotype:
            raise ConfigError(f"{source}: stage 'retrain' needs a genotype file (--genotype genotype.json)")
        for key in ("T", "C", "cells", "batch_size", "retrain_batch_size"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{source}: '{key}' must be >= 1, got {getattr(self, key)}")
        for key in ("search_epochs", "retrain_epochs", "psi_warmup_epochs", "arch_warmup_epochs", "teacher_epochs"):
            if int(getattr(self, key)) < 0:
                raise ConfigError(f"{source}: '{key}' must be >= 0, got {getattr(self, key)}")
        if self.max_skips is not None and self.max_skips < 0:
            raise ConfigError(f"{source}: 'max_skips' must be >= 0, got {self.max_skips}")
        if self.distill_weight > 0 and self.teacher_epochs < 1:
            raise ConfigError(f"{source}: 'distill_weight' > 0 needs 'teacher_epochs' >= 1, got {self.teacher_epochs}")
        if any(r < 0 or r >= self.cells for r in self.reductions):
            raise ConfigError(f"{source}: 'reductions' {self.reductions} must be cell indices in [0, {self.cells})")
        if self.p is not None and not 0.0 <= self.p < 1.0:
            raise ConfigError(f"{source}: 'p' (prune rate) must be in [0, 1), got {self.p}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"{source}: 'strategy' must be one of {', '.join(STRATEGIES)}, got '{self.strategy}'")
        if self.hand_bits not in (1, 2, 4):
            raise ConfigError(f"{source}: 'hand_bits' must be 1, 2 or 4, got {self.hand_bits}")
        if self.hand_nodes < 1:
            raise ConfigError(f"{source}: 'hand_nodes' must be >= 1, got {self.hand_nodes}")
        if self.proxy_epochs < 1 or (self.random_candidates is not None and self.random_candidates < 1):
            raise ConfigError(f"{source}: 'proxy_epochs' and 'random_candidates' must be >= 1")
        if self.memory_budget_kb is not None and not self.memory_budget_kb > 0:
            raise ConfigError(f"{source}: 'memory_budget_kb' must be > 0, got {self.memory_budget_kb}")
        if self.lif_mode not in ("lava", "float"):
            raise ConfigError(f"{source}: 'lif_mode' must be 'lava' or 'float', got '{self.lif_mode}'")
        if self.arch_data not in ("same", "heldout"):
            raise ConfigError(f"{source}: 'arch_data' must be 'same' or 'heldout', got '{self.arch_data}'")
        if self.keep not in ("best_val", "last"):
            raise ConfigError(f"{source}: 'keep' must be 'best_val' or 'last', got '{self.keep}'")
        if self.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"{source}: 'optimizer' must be 'sgd' or 'adamw', got '{self.optimizer}'")
        if self.cost_weights not in ("relative", "absolute"):
            raise ConfigError(f"{source}: 'cost_weights' must be 'relative' or 'absolute', got '{self.cost_weights}'")
        from lsnn.data.augment import AUGMENTS

        if self.augment not in AUGMENTS:
            raise ConfigError(f"{source}: 'augment' must be one of {', '.join(AUGMENTS)}, got '{self.augment}'")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SCALARS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _check_type(source: str, key: str, annotation: str, value: Any) -> None:
    """ConfigError unless `value` fits the field's annotation ("int", "float | None", "list[int]", ...)."""
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "None" in kinds:
        return
    for kind in kinds:
        if kind in _SCALARS and isinstance(value, _SCALARS[kind]) and (kind == "bool" or not isinstance(value, bool)):
            return
        if kind == "list[int]" and isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            return
    raise ConfigError(f"{source}: '{key}' must be {' or '.join(kinds)}, got {value!r}")


# Per-dataset defaults (Table 1 backbones for CIFAR and GSC; a small one for 8x8 digits).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    # digits: ~400 search iterations instead of the paper's ~80k, so the architecture lr is 10x.
    # retraining at four times the search width, prune rate 0.5 (search and retraining), label
    # smoothing 0.1, weight decay 1e-3, the last epoch kept (docs/ACCURACY.md).
    "digits": dict(cells=3, reductions=[1, 2], C=8, C_retrain=32, p=0.5, T=4, search_epochs=10, retrain_epochs=80,
                   batch_size=32, preset="medium", psi_warmup_epochs=2, arch_lr=3e-3, retrain_lr=0.05,
                   label_smoothing=0.1, weight_decay=1e-3, keep="last"),
    "cifar10": dict(cells=8, reductions=[2, 5], C=16, C_retrain=16, T=6, search_epochs=50,
                    retrain_epochs=200, batch_size=30, retrain_batch_size=50, preset="medium",
                    psi_warmup_epochs=5, augment="crop_flip"),
    "cifar100": dict(cells=8, reductions=[2, 5], C=16, C_retrain=16, T=6, search_epochs=50,
                     retrain_epochs=200, batch_size=30, retrain_batch_size=50, preset="medium",
                     psi_warmup_epochs=5, augment="crop_flip"),
    "gsc": dict(cells=6, reductions=[2, 4], C=16, T=6, search_epochs=50, retrain_epochs=200,
                batch_size=30, retrain_batch_size=50, preset="gsc", psi_warmup_epochs=5),
}

_FIELD_NAMES = {f.name for f in fields(RunConfig)}


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML run config; unknown keys and non-mapping files are errors naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of option: value at the top level")
    unknown = sorted(set(data) - _FIELD_NAMES)
    if unknown:
        raise ConfigError(f"{p}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_FIELD_NAMES))})")
    for key in INPUT_PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value:
            q = Path(value).expanduser()
            data[key] = str(q) if q.is_absolute() else os.path.normpath(p.parent / q)
    return data


def build_config(dataset: str | None, file_values: dict[str, Any], cli_values: dict[str, Any],
                 source: str = "options") -> RunConfig:
    """Merge dataset defaults, a YAML file's values and explicit CLI values into a RunConfig."""
    name = cli_values.get("dataset") or file_values.get("dataset") or dataset or "digits"
    if not isinstance(name, str):
        raise ConfigError(f"{source}: 'dataset' must be a dataset name, got {name!r}")
    merged: dict[str, Any] = dict(DATASET_DEFAULTS.get(name, {}))
    merged["out_dir"] = f"runs/{name}"
    user = {**file_values, **{k: v for k, v in cli_values.items() if v is not None}}
    if "preset" in user and "p" not in user:     # a dataset's default p goes with its default preset
        merged.pop("p", None)
    merged.update(user)
    merged["dataset"] = name
    try:
        cfg = RunConfig(**merged)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg.validate(source)
