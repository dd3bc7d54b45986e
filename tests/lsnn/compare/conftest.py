"""Run directories written by hand: summary.json (+ config.yaml), as `lsnn search` leaves them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

NEW_SUMMARY: dict[str, Any] = {
    "dataset": "digits", "test_accuracy": 0.9556, "model_size_bytes": 21357.0, "bit_synops": 45835044.6,
    "synops": 11326392.9, "energy_pj": 1.3e7, "T": 3, "bits_per_cell": [4, 2, 2], "prune_rate": 0.7,
    "wall_seconds": 920.4, "model": "runs/x/model.pt",
    "strategy": "litesnn", "seed": 0, "preset": "medium", "l1": 0.15, "l2": 0.01,
    "search_seconds": 100.2, "retrain_seconds": 80.1,
    "deploy": {"target": "loihi2", "cores": 457, "torch_vs_emulator": {"prediction_agreement": 1.0},
               "lava_bit_exact": True,
               "counts_per_sample": {"measured_synops": 10711472.7, "measured_bit_synops": 43394535.3}},
}
OLD_KEYS = ("strategy", "seed", "preset", "l1", "l2", "search_seconds", "retrain_seconds", "deploy")


def write_run(path: Path, summary: Any = None, config: Any = None, raw: str | None = None) -> Path:
    """A run dir with summary.json (`raw` text verbatim, else `summary` as JSON) and config.yaml if given."""
    path.mkdir(parents=True, exist_ok=True)
    if raw is not None:
        (path / "summary.json").write_text(raw)
    elif summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    if config is not None:
        (path / "config.yaml").write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def summary(**changes: Any) -> dict[str, Any]:
    """NEW_SUMMARY with `changes` applied (a value of None removes the key)."""
    out = {k: v for k, v in NEW_SUMMARY.items() if k not in changes}
    out.update({k: v for k, v in changes.items() if v is not None})
    return out


def old_summary(**changes: Any) -> dict[str, Any]:
    """A summary as written before strategy/seed/preset/l1/l2/timings/deploy existed."""
    return summary(**{k: None for k in OLD_KEYS}, **changes)


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """make_run(name, summary=..., config=..., raw=...) -> tmp_path/name."""
    return lambda name, **kw: write_run(tmp_path / name, **kw)
