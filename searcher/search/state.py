"""Search state outside the model: checked input data, the allocator setting, the checkpoint.

The checkpoint (`search_ckpt.pt`, written after every epoch) holds the model, both optimizers,
the scheduler, the epoch, the torch RNG state and the history; it loads with weights_only=True.
Resuming requires the same search settings (a list of differing keys is the error).
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsnn.errors import ConfigError, DatasetError
from lsnn.searcher import checkpoint as ckpt

CKPT_NAME = "search_ckpt.pt"
CKPT_VERSION = 1
# keys that may differ between an interrupted run and its resumption
RESUME_FREE = {"device", "num_threads", "progress", "tune_malloc", "eval_batch_size"}


def tune_allocator() -> bool:
    """Keep freed memory in glibc's heap instead of returning it to the kernel.

    Training allocates and frees the same large tensors every iteration; by default glibc serves
    them with mmap/munmap, so every allocation page-faults fresh zeroed pages (measured: an
    elementwise op on a fresh 64 MB tensor ~6x slower than on reused memory). Returns False where
    mallopt is unavailable (non-glibc). Process-wide; RSS then stays at its high-water mark."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8
        ok = libc.mallopt(m_mmap_max, 0) == 1
        ok = libc.mallopt(m_trim_threshold, 1 << 30) == 1 and ok
        ok = libc.mallopt(m_arena_max, 1) == 1 and ok      # one heap: worker threads' frees are reused too
        return ok
    except (OSError, AttributeError):
        return False


def as_tensors(data: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x float32 [N,C,H,W] in [0,1], y int64 [N]) from NumPy or torch arrays, checked."""
    try:
        x, y = data
    except (TypeError, ValueError):
        raise DatasetError(f"{name}: expected a pair (x, y)") from None
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if x.dim() != 4:
        raise DatasetError(f"{name} x: expected [N, C, H, W], got shape {list(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise DatasetError(f"{name} y: expected [{x.shape[0]}] labels, got shape {list(y.shape)}")
    if x.shape[0] == 0:
        raise DatasetError(f"{name}: no samples")
    if not x.is_floating_point():
        raise DatasetError(f"{name} x: expected floating point values in [0, 1], got {x.dtype}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise DatasetError(f"{name} y: expected integer labels, got {y.dtype}")
    x = x.to(torch.float32)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise DatasetError(f"{name} x: values must lie in [0, 1], found [{lo:g}, {hi:g}]")
    y = y.to(torch.int64)
    if int(y.min()) < 0:
        raise DatasetError(f"{name} y: labels must be >= 0, found {int(y.min())}")
    return x, y


def resolve_conv_dtype(name: str, device: str) -> torch.dtype | None:
    """torch.bfloat16 or None (float32) for cfg.conv_dtype; "auto" picks bfloat16 on a CPU whose
    oneDNN has native bfloat16 (AVX512-BF16/AMX: 2-3x faster convs), float32 elsewhere."""
    if name == "bfloat16":
        return torch.bfloat16
    if name == "float32":
        return None
    if torch.device(device).type != "cpu":
        return None
    try:
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None
    except (AttributeError, RuntimeError):
        return None


def save_checkpoint(path: Path, cfg: Any, net: torch.nn.Module, wopt: Any, sched: Any, aopt: Any,
                    epoch: int, history: list[dict[str, Any]]) -> None:
    """The search state after `epoch` epochs (atomic, weights_only-loadable)."""
    ckpt.save_checkpoint(path, {"config": ckpt.config_dict(cfg), "epoch": epoch, "model": net.state_dict(),
                                "w_opt": wopt.state_dict(), "w_sched": sched.state_dict(),
                                "a_opt": aopt.state_dict(), "torch_rng": torch.get_rng_state(),
                                "history": history}, CKPT_VERSION)


def load_checkpoint(path: Path, cfg: Any, net: torch.nn.Module, wopt: Any, sched: Any, aopt: Any
                    ) -> tuple[int, list[dict[str, Any]]]:
    """Restore everything; the checkpoint's search settings must equal `cfg`'s."""
    state = ckpt.load_checkpoint(path, "search", CKPT_VERSION)
    mine = ckpt.config_dict(cfg)
    diff = ckpt.settings_diff(state["config"], mine, RESUME_FREE)
    if diff:
        raise ConfigError(f"{path}: cannot resume, the search settings differ in "
                          + ckpt.describe_diff(state["config"], mine, diff))
    net.load_state_dict(state["model"])
    wopt.load_state_dict(state["w_opt"])
    sched.load_state_dict(state["w_sched"])
    aopt.load_state_dict(state["a_opt"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]), list(state["history"])
