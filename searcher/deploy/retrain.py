"""Retrain a decoded genotype in deployable form (DeployNet): SGD + cosine, auxiliary loss, resume.

Loss: cross-entropy of the logits averaged over the genotype's T steps, plus `aux_weight` times
that of the auxiliary head (LitE-SNN retraining, DARTS-style). SGD (lr 0.025, momentum 0.9,
weight decay 3e-4 on conv/FC weights only; none on BN, thresholds, biases, mask scores),
cosine schedule per epoch, gradient-norm clip 5, batch 50. The weights kept are the best
validation epoch's (`keep="best_val"`) or the last epoch's (`keep="last"`).

Two phases:
1. epochs [0, epochs - freeze_epochs): BN folded with running statistics and quantized, BN
   batch statistics in the training forward (torch.ao's QAT fold); the HYDRA mask scores are
   optimised with the weights (the genotype carries no mask: scores start equal to W, i.e.
   magnitude pruning at initialisation, and learn which weights to keep);
2. the last `freeze_epochs` (default 10 % of the epochs): BN statistics frozen and the mask
   frozen, so the training forward *is* the deployed integer forward (bias and threshold
   rounded, straight-through) and the weights adapt to the final mask.

Optional phases before these (deploy.schedule): lr warm-up, a float-LIF warm phase, a pruning
ramp; only epochs that trained the deployed form may be kept as the best. Label smoothing and a
separate lr for the FC readout (`readout_lr_scale`) are options.

Every evaluation (val, test) runs the eval forward, i.e. exactly what the exporter writes. The
weights of the best validation epoch (or, with keep="last", the last) are kept. Deterministic: the init uses
`torch.manual_seed(seed)`, the data order and augmentation of epoch e use NumPy generators
seeded by (seed, e), nothing else is random, so a run resumed from `retrain_ckpt.pt` (written
after every epoch, atomically) continues exactly as if it had not stopped.
"""
from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from lsnn.errors import ConfigError
from lsnn.searcher import checkpoint as ckpt
from lsnn.searcher.deploy.net import DeployNet
from lsnn.searcher.deploy.recalibrate import recalibrate_bn
from lsnn.searcher.deploy.schedule import apply_phase, lr_at, phase_at
from lsnn.searcher.deploy.teacher import distill_loss
from lsnn.searcher.space.genotype import Genotype

CKPT_NAME = "retrain_ckpt.pt"
CKPT_VERSION = 1
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]
Split = tuple[np.ndarray, np.ndarray]


@dataclass
class RetrainConfig:
    """Retraining hyper-parameters (the paper's: 200 epochs, batch 50, SGD 0.025 cosine, aux 0.4)."""

    epochs: int = 200
    batch_size: int = 50
    lr: float = 0.025
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    aux_weight: float = 0.4
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "cpu"
    num_threads: Optional[int] = None
    learn_mask: bool = True              # optimise the mask scores in phase 1 (else: frozen at |W| init)
    freeze_epochs: Optional[int] = None  # last epochs with BN stats + mask frozen (None: round(0.1 * epochs))
    eval_batch_size: int = 200
    progress: bool = True
    in_bits: int = 8
    stem_bits: Optional[int] = None      # None: widest without 24-bit overflow (CIFAR 4, 1-channel 5)
    fc_bits: int = 7                     # 7: integers +-127, Loihi's 8-bit weights
    pre_bits: Optional[int] = None       # None: preprocessing convs at the cell's bits, pruned (search space)
    lif_mode: str = "lava"               # "lava": the chip's integer LIF in the loop (bit-exact deploy); "float": Eq. 1, tau 0.2
    label_smoothing: float = 0.0         # of the cross-entropy (main and auxiliary head)
    optimizer: str = "sgd"               # "sgd" (momentum, the paper's) or "adamw" (decoupled weight decay)
    readout_lr_scale: float = 1.0        # lr multiplier of the FC readout (pooled rates vary little between
    #                                      samples: the FC's gradient is small, Speech Commands needs ~20x)
    warmup_epochs: int = 0               # linear lr warm-up, then cosine (deploy.schedule)
    float_epochs: int = 0                # lava mode: first epochs with the float LIF (cheaper), then the integer LIF
    prune_ramp_epochs: int = 0           # prune rate ramps from 0 to p over these epochs (0: p from the start)
    readout_axon_limit: Optional[int] = None   # deploy target's input axons per core: the readout's parts (lava mode)
    keep: str = "best_val"               # weights kept: the best val epoch's (first on ties) or the "last" epoch's
    distill_weight: float = 0.0          # weight of a float teacher's soft targets (deploy.teacher); 0: none
    distill_temperature: float = 4.0     # softmax temperature of the distillation term
    recalibrate_samples: int = 0         # at the switch to the frozen form: re-estimate BN statistics
    #                                      on this many training samples (deploy.recalibrate); 0: off

    def validate(self) -> "RetrainConfig":
        for k in ("batch_size", "eval_batch_size"):
            if int(getattr(self, k)) < 1:
                raise ConfigError(f"retrain: '{k}' must be >= 1, got {getattr(self, k)}")
        if self.epochs < 0:
            raise ConfigError(f"retrain: 'epochs' must be >= 0, got {self.epochs}")
        if self.freeze_epochs is not None and not 0 <= self.freeze_epochs <= self.epochs:
            raise ConfigError(f"retrain: 'freeze_epochs' must be in [0, epochs], got {self.freeze_epochs}")
        if self.lr <= 0 or self.grad_clip <= 0:
            raise ConfigError("retrain: 'lr' and 'grad_clip' must be > 0")
        if self.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"retrain: 'optimizer' must be 'sgd' or 'adamw', got '{self.optimizer}'")
        if self.keep not in ("best_val", "last"):
            raise ConfigError(f"retrain: 'keep' must be 'best_val' or 'last', got '{self.keep}'")
        if self.readout_lr_scale <= 0:
            raise ConfigError(f"retrain: 'readout_lr_scale' must be > 0, got {self.readout_lr_scale}")
        if not 0.0 <= self.distill_weight <= 1.0 or self.distill_temperature <= 0:
            raise ConfigError(f"retrain: 'distill_weight' must be in [0, 1] and 'distill_temperature' > 0, got "
                              f"{self.distill_weight}, {self.distill_temperature}")
        if self.recalibrate_samples < 0 or self.recalibrate_samples == 1:
            raise ConfigError(f"retrain: 'recalibrate_samples' must be 0 (off) or >= 2, got {self.recalibrate_samples}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"retrain: 'label_smoothing' must be in [0, 1), got {self.label_smoothing}")
        for k in ("warmup_epochs", "float_epochs", "prune_ramp_epochs"):
            if not 0 <= int(getattr(self, k)) <= max(self.epochs - self.n_freeze, 0):
                raise ConfigError(f"retrain: '{k}' must be in [0, epochs - freeze epochs = "
                                  f"{max(self.epochs - self.n_freeze, 0)}], got {getattr(self, k)}")
        return self

    @property
    def n_freeze(self) -> int:
        return int(round(0.1 * self.epochs)) if self.freeze_epochs is None else int(self.freeze_epochs)

    def lr_at(self, epoch: int) -> float:
        """Warm-up, then cosine annealing per epoch (0-based), from lr to lr_min."""
        return lr_at(self, epoch)


@dataclass
class RetrainResult:
    net: DeployNet
    history: list[dict[str, Any]]
    test_accuracy: Optional[float]
    best_epoch: Optional[int] = None
    best_val_acc: Optional[float] = None
    test_spike_rates: dict[str, float] = field(default_factory=dict)
    checkpoint: Optional[Path] = None

    @property
    def epoch_seconds(self) -> float:
        """Seconds spent in the training epochs of every piece of a resumed run, not just the last."""
        return float(sum(r.get("seconds", 0.0) for r in self.history))


# ----------------------------------------------------------------------------------- helpers


def build_net(genotype: Genotype, cfg: RetrainConfig) -> DeployNet:
    """The DeployNet for `genotype` (width genotype.C), initialised from `cfg.seed` (deterministic)."""
    torch.manual_seed(int(cfg.seed))
    return DeployNet(genotype, in_bits=cfg.in_bits, stem_bits=cfg.stem_bits, fc_bits=cfg.fc_bits,
                     pre_bits=cfg.pre_bits, aux=cfg.aux_weight > 0, lif_mode=cfg.lif_mode,
                     readout_axon_limit=cfg.readout_axon_limit)


def param_groups(net: DeployNet, weight_decay: float, readout_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """Weight decay on conv / FC weights only (BN affine, thresholds, biases and mask scores: none);
    the readout in its own group when its lr is scaled (`lr_scale` is applied by the schedule)."""
    decay, no_decay, scores, readout = [], [], [], []   # readout: only to know whether it has a group
    score_ids = {id(p) for p in net.mask_parameters()}
    readout_ids = {id(p) for p in net.readout.parameters()} if readout_lr_scale != 1.0 else set()
    for name, p in net.named_parameters():
        if id(p) in readout_ids:
            readout.append(p)
        elif id(p) in score_ids:
            scores.append(p)
        elif name.endswith("weight") and p.dim() > 1:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay, "name": "weights"},
              {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"}]
    if scores:
        groups.append({"params": scores, "weight_decay": 0.0, "name": "mask_scores"})
    if readout:
        groups.append({"params": [net.readout.weight], "weight_decay": weight_decay, "name": "readout",
                       "lr_scale": float(readout_lr_scale)})
        groups.append({"params": [net.readout.bias], "weight_decay": 0.0, "name": "readout_bias",
                       "lr_scale": float(readout_lr_scale)})
    return groups


def _batches(n: int, batch_size: int, order: np.ndarray) -> list[np.ndarray]:
    out = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if len(out) > 1 and len(out[-1]) < 2:   # a batch of one sample cannot give BN batch statistics
        out[-2] = np.concatenate([out[-2], out[-1]])
        out.pop()
    return out


@torch.no_grad()
def evaluate(net: DeployNet, data: Split, batch_size: int = 200, device: str = "cpu"
             ) -> tuple[float, dict[str, float]]:
    """Accuracy and mean spike rate per population of the eval (deployed) forward. Leaves the mode as it was."""
    x, y = data
    was_training = net.training
    net.eval()
    correct = 0
    rate_sum: dict[str, float] = {}
    n = len(y)
    try:
        for i in range(0, n, batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32)).to(device)
            yb = torch.from_numpy(np.asarray(y[i:i + batch_size], dtype=np.int64)).to(device)
            out = net.forward_all(xb)
            correct += int((out["logits"].argmax(1) == yb).sum())
            for k, v in out["rates"].items():
                rate_sum[k] = rate_sum.get(k, 0.0) + float(v) * len(yb)
    finally:
        net.train(was_training)
    if n == 0:
        return float("nan"), {}
    return correct / n, {k: v / n for k, v in rate_sum.items()}


RESUME_FREE = ("device", "num_threads", "progress", "eval_batch_size")   # may change on resume


def _cfg_key(cfg: RetrainConfig) -> dict[str, Any]:
    return ckpt.config_dict(cfg, drop=RESUME_FREE)


# ----------------------------------------------------------------------------------- main loop


@dataclass
class _Progress:
    """What the retraining loop carries across epochs (and the checkpoint stores)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = -1.0
    best_epoch: Optional[int] = None
    best_state: Optional[dict[str, torch.Tensor]] = None
    start: int = 0


def _resume(ckpt_path: Path, genotype: Genotype, cfg: RetrainConfig, net: DeployNet, opt: Any,
            device: torch.device) -> _Progress:
    """Restore net, optimizer and progress from `ckpt_path` (same genotype and settings only)."""
    ck = ckpt.load_checkpoint(ckpt_path, "retrain", CKPT_VERSION, map_location=device)
    if ck["genotype"] != genotype.to_dict() or ck["config"] != _cfg_key(cfg):
        raise ConfigError(f"{ckpt_path}: --resume with a different genotype or retrain settings; "
                          f"use a new output directory")
    net.load_state_dict(ck["net"])
    opt.load_state_dict(ck["optimizer"])
    return _Progress(list(ck["history"]), ck["best_val"], ck["best_epoch"], ck["best_state"], int(ck["epoch"]))


def _loss(res: dict[str, Any], yb: torch.Tensor, cfg: RetrainConfig, soft: Optional[torch.Tensor]) -> torch.Tensor:
    """CE (+ aux_weight x the auxiliary head's CE); with a teacher's logits `soft`, the main term is
    (1 - w) CE + w t^2 KL (Hinton's distillation, w = distill_weight)."""
    loss = F.cross_entropy(res["logits"], yb, label_smoothing=cfg.label_smoothing)
    if soft is not None and cfg.distill_weight > 0:
        kd = distill_loss(res["logits"], soft, cfg.distill_temperature)
        loss = (1.0 - cfg.distill_weight) * loss + cfg.distill_weight * kd
    if res["aux"] is not None and cfg.aux_weight > 0:
        loss = loss + cfg.aux_weight * F.cross_entropy(res["aux"], yb, label_smoothing=cfg.label_smoothing)
    return loss


def _train_epoch(net: DeployNet, opt: Any, cfg: RetrainConfig, train: Split, epoch: int,
                 augment: Optional[Augment], device: torch.device, teacher: Optional[torch.nn.Module] = None
                 ) -> tuple[float, float, dict[str, float]]:
    """One epoch over `train` in the seeded order of (seed, epoch): (mean loss, accuracy, mean
    spike rate per population)."""
    from tqdm import tqdm

    x_tr, y_tr = train
    order = np.random.default_rng([cfg.seed, epoch]).permutation(len(y_tr))
    aug_rng = np.random.default_rng([cfg.seed, epoch, 1])
    loss_sum, correct, seen = 0.0, 0, 0
    rate_sum: dict[str, float] = {}
    batches = _batches(len(y_tr), cfg.batch_size, order)
    bar = tqdm(batches, desc=f"retrain {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False)
    for idx in bar:
        xb = np.asarray(x_tr[idx], dtype=np.float32)
        if augment is not None:
            xb = augment(xb, aug_rng)
        xb = torch.from_numpy(np.ascontiguousarray(xb)).to(device)
        yb = torch.from_numpy(np.asarray(y_tr[idx], dtype=np.int64)).to(device)
        res = net.forward_all(xb)
        with torch.no_grad():
            soft = teacher(xb) if teacher is not None else None
        loss = _loss(res, yb, cfg, soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], cfg.grad_clip)
        opt.step()
        b = len(yb)
        loss_sum += float(loss.detach()) * b
        correct += int((res["logits"].detach().argmax(1) == yb).sum())
        seen += b
        for k, v in res["rates"].items():
            rate_sum[k] = rate_sum.get(k, 0.0) + float(v) * b
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    bar.close()
    return loss_sum / seen, correct / seen, {k: v / seen for k, v in rate_sum.items()}


def _recalibrate(net: DeployNet, cfg: RetrainConfig, train: Split, epoch: int, device: torch.device) -> None:
    """BN statistics for the deployed form from a seeded sample of the training split (no augmentation)."""
    x_tr = train[0]
    n = min(cfg.recalibrate_samples, len(x_tr))
    idx = np.sort(np.random.default_rng([cfg.seed, epoch, 2]).permutation(len(x_tr))[:n])
    recalibrate_bn(net, torch.from_numpy(np.ascontiguousarray(x_tr[idx], dtype=np.float32)).to(device))


def _run_epoch(net: DeployNet, opt: Any, cfg: RetrainConfig, train: Split, val: Optional[Split], epoch: int,
               augment: Optional[Augment], device: torch.device, prog: _Progress,
               teacher: Optional[torch.nn.Module] = None) -> dict[str, Any]:
    """Train one epoch, evaluate on val, keep the best weights in `prog`; returns the epoch's record."""
    t0 = time.time()
    net.train()
    phase = phase_at(cfg, epoch)
    apply_phase(net, phase, cfg.learn_mask)
    for g in opt.param_groups:
        g["lr"] = phase.lr * g.get("lr_scale", 1.0)
    if cfg.recalibrate_samples > 0 and epoch == cfg.epochs - cfg.n_freeze:   # the first frozen epoch
        _recalibrate(net, cfg, train, epoch, device)
    loss, train_acc, train_rates = _train_epoch(net, opt, cfg, train, epoch, augment, device, teacher)
    rec: dict[str, Any] = {"epoch": epoch + 1, "loss": loss, "train_acc": train_acc, "val_acc": None, "lr": phase.lr,
                           "bn_frozen": phase.frozen, "mask_frozen": phase.frozen or not cfg.learn_mask,
                           "lif_mode": phase.lif_mode, "prune_progress": phase.prune_progress}
    if val is not None and len(val[1]) > 0:
        acc, rates = evaluate(net, val, cfg.eval_batch_size, device)
        rec["val_acc"] = acc
        rec["spike_rate"] = rates                 # eval (deployed) forward on the val split
    else:
        acc = train_acc
        rec["spike_rate"] = train_rates
    # only a deploy-form epoch may be kept (an earlier one's weights would export a different net)
    newer = cfg.keep == "last" or acc > prog.best_val
    if phase.deployable and (newer or prog.best_state is None):
        prog.best_val, prog.best_epoch = acc, epoch + 1
        prog.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    rec["seconds"] = time.time() - t0
    prog.history.append(rec)
    return rec


def run_retrain(genotype: Genotype, cfg: RetrainConfig, train: Split, val: Optional[Split], test: Optional[Split],
                out_dir: str | os.PathLike, resume: bool = False,
                on_epoch: Optional[Callable[[dict[str, Any]], None]] = None,
                augment: Optional[Augment] = None, teacher: Optional[torch.nn.Module] = None) -> RetrainResult:
    """Retrain `genotype` from scratch (or resume); returns the best-val network, its history and test accuracy.

    train / val / test: (x float32 [N, C, H, W] in [0, 1], y int64 [N]); val and test may be None
    (then the last epoch is kept / no test accuracy). `augment(x_batch, rng)` is applied to
    training batches only. `on_epoch(record)` is called after each epoch (after the checkpoint).
    `teacher(x) -> logits` (float, frozen) gives the soft targets when `cfg.distill_weight` > 0.
    """
    cfg.validate()
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    device = torch.device(cfg.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CKPT_NAME
    if len(train[1]) < 2:
        raise ConfigError(f"retrain: need at least 2 training samples, got {len(train[1])}")
    if cfg.distill_weight > 0 and teacher is None:
        raise ConfigError("retrain: 'distill_weight' > 0 needs a teacher")

    net = build_net(genotype, cfg).to(device)
    groups = param_groups(net, cfg.weight_decay, cfg.readout_lr_scale)
    if cfg.optimizer == "adamw":
        opt: Any = torch.optim.AdamW(groups, lr=cfg.lr)
    else:
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    prog = _resume(ckpt_path, genotype, cfg, net, opt, device) if resume and ckpt_path.is_file() else _Progress()
    for epoch in range(prog.start, cfg.epochs):
        rec = _run_epoch(net, opt, cfg, train, val, epoch, augment, device, prog, teacher)
        ckpt.save_checkpoint(ckpt_path, {"epoch": epoch + 1, "net": net.state_dict(), "optimizer": opt.state_dict(),
                                         "history": prog.history, "best_val": prog.best_val,
                                         "best_epoch": prog.best_epoch, "best_state": prog.best_state,
                                         "genotype": genotype.to_dict(), "config": _cfg_key(cfg)}, CKPT_VERSION)
        if on_epoch is not None:
            on_epoch(copy.deepcopy(rec))

    if prog.best_state is not None:
        net.load_state_dict(prog.best_state)
    net.set_lif_mode(cfg.lif_mode).set_prune_progress(1.0)
    net.set_bn_frozen(False)
    net.eval()
    test_acc, test_rates = None, {}
    if test is not None and len(test[1]) > 0:
        test_acc, test_rates = evaluate(net, test, cfg.eval_batch_size, device)
    return RetrainResult(net=net, history=prog.history, test_accuracy=test_acc, best_epoch=prog.best_epoch,
                         best_val_acc=None if prog.best_epoch is None else prog.best_val,
                         test_spike_rates=test_rates, checkpoint=ckpt_path)
