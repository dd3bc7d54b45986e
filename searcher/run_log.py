"""Per-epoch JSONL logs that survive interruption and resume without duplicate epochs."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _plain(v: Any) -> Any:
    """Convert tensors / numpy scalars and arrays into JSON-able Python values."""
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL log (empty if it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def append_epoch(path: str | Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Write `record`, dropping any earlier record of the same or a later epoch (a resumed run)."""
    p = Path(path)
    rec = _plain(record)
    kept = [r for r in read_log(p) if r.get("epoch", -1) < rec.get("epoch", 0)]
    kept.append(rec)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, p)
    return kept
