"""Checkpoints of long searcher runs (search and retrain): one versioned, atomically written
file per stage that loads with weights_only=True and refuses to resume other settings."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable, Mapping

import torch

from lsnn.errors import ConfigError
from lsnn.io import atomic_path


def config_dict(cfg: Any, drop: Iterable[str] = ()) -> dict[str, Any]:
    """A dataclass config as plain values (tuples as lists), without the keys in `drop`."""
    d = dataclasses.asdict(cfg)
    skip = set(drop)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k not in skip}


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any], version: int) -> None:
    """Write `state` plus its format `version` to `path` atomically."""
    with atomic_path(path) as tmp:
        torch.save({"version": version, **state}, tmp)


def load_checkpoint(path: str | os.PathLike, what: str, version: int,
                    map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (no code runs); ConfigError naming the file
    if it is unreadable or of another `version`."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ConfigError(f"{path}: not a readable {what} checkpoint ({type(exc).__name__}: {exc})") from None
    found = state.get("version") if isinstance(state, dict) else None
    if found != version:
        raise ConfigError(f"{path}: {what} checkpoint version {found!r} is not {version}")
    return state


def settings_diff(saved: Mapping[str, Any], current: Mapping[str, Any], free: Iterable[str] = ()) -> list[str]:
    """The keys (sorted) whose values differ between a checkpoint's settings and the current
    ones, ignoring the keys in `free` (those a resumed run may change)."""
    skip = set(free)
    return sorted(k for k in set(saved) | set(current) if k not in skip and saved.get(k) != current.get(k))


def describe_diff(saved: Mapping[str, Any], current: Mapping[str, Any], keys: Iterable[str]) -> str:
    """'key (old -> new), ...' for an error message."""
    return ", ".join(f"{k} ({saved.get(k)!r} -> {current.get(k)!r})" for k in keys)
