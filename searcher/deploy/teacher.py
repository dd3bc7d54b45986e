"""A float teacher for distillation: a plain CNN trained on the same split before retraining.

The deployable SNN learns from few samples through integer neurons; the soft targets of a float
network trained on the same data carry the class similarities the hard labels lack (Hinton et
al. 2015). The teacher is three conv-BN-ReLU blocks (widths `widths`, a 2x2 max-pool after the
first two when the map allows), global average pooling and a linear layer, trained with AdamW
and a one-cycle schedule. Nothing of it is deployed. Deterministic for a seed; saved to
`teacher.pt` in the run folder so that a resumed retraining uses the same soft targets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from lsnn.searcher import checkpoint as ckpt

TEACHER_NAME = "teacher.pt"
TEACHER_VERSION = 1
Split = tuple[np.ndarray, np.ndarray]
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass
class TeacherConfig:
    """How the float teacher is built and trained."""

    widths: tuple[int, ...] = (32, 64, 128)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0


class FloatCNN(nn.Module):
    """conv-BN-ReLU x len(widths) (max-pool after all but the last while the map is >= 8), GAP, FC."""

    def __init__(self, in_ch: int, num_classes: int, widths: tuple[int, ...], hw: tuple[int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c, (h, w) = in_ch, hw
        for i, wd in enumerate(widths):
            layers += [nn.Conv2d(c, wd, 3, padding=1, bias=False), nn.BatchNorm2d(wd), nn.ReLU(inplace=True)]
            if i < len(widths) - 1 and min(h, w) >= 8:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = wd
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean(dim=(2, 3)))


@torch.no_grad()
def accuracy(net: nn.Module, data: Split, batch_size: int = 256) -> float:
    """Top-1 accuracy of `net` in eval mode on (x, y)."""
    net.eval()
    x, y = data
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], dtype=np.float32))
        correct += int((net(xb).argmax(1).numpy() == np.asarray(y[i:i + batch_size])).sum())
    return correct / max(1, len(y))


def _fit(net: FloatCNN, cfg: TeacherConfig, train: Split, augment: Optional[Augment], progress: bool) -> None:
    """AdamW + one-cycle over `cfg.epochs`, data order and augmentation seeded by (seed, epoch)."""
    from tqdm import tqdm

    x_tr, y_tr = train
    steps = cfg.epochs * ((len(y_tr) + cfg.batch_size - 1) // cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, steps))
    for epoch in tqdm(range(cfg.epochs), desc="teacher", disable=not progress, leave=False):
        net.train()
        order = np.random.default_rng([cfg.seed, epoch, 7]).permutation(len(y_tr))
        aug_rng = np.random.default_rng([cfg.seed, epoch, 8])
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            if len(idx) < 2:
                continue
            xb = np.asarray(x_tr[idx], dtype=np.float32)
            if augment is not None:
                xb = augment(xb, aug_rng)
            out = net(torch.from_numpy(np.ascontiguousarray(xb)))
            loss = F.cross_entropy(out, torch.from_numpy(np.asarray(y_tr[idx], dtype=np.int64)),
                                   label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


def train_teacher(cfg: TeacherConfig, train: Split, val: Optional[Split], num_classes: int,
                  out_dir: str | Path, augment: Optional[Augment] = None, progress: bool = True
                  ) -> tuple[FloatCNN, dict[str, Any]]:
    """The teacher for `train` (loaded from `out_dir/teacher.pt` when trained there with the same
    settings, else trained and saved); returns it in eval mode and {val_acc, trained}."""
    x_tr = train[0]
    shape = tuple(int(s) for s in x_tr.shape[1:])
    key = {**asdict(cfg), "widths": list(cfg.widths), "input_shape": list(shape), "num_classes": int(num_classes),
           "n_train": int(len(train[1]))}
    path = Path(out_dir) / TEACHER_NAME
    torch.manual_seed(int(cfg.seed))
    net = FloatCNN(shape[0], num_classes, tuple(cfg.widths), (shape[1], shape[2]))
    trained = True
    if path.is_file():
        ck = ckpt.load_checkpoint(path, "teacher", TEACHER_VERSION)
        if ck["config"] == key:
            net.load_state_dict(ck["net"])
            trained = False
    if trained:
        _fit(net, cfg, train, augment, progress)
        ckpt.save_checkpoint(path, {"net": net.state_dict(), "config": key}, TEACHER_VERSION)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    info = {"val_acc": accuracy(net, val) if val is not None and len(val[1]) else None, "trained": trained}
    return net, info


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target term: temperature^2 * KL(softmax(teacher / t) || softmax(student / t))."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
