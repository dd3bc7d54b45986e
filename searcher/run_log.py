"""Per-epoch JSONL logs that survive interruption and resume without duplicate epochs."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lsnn.io import atomic_write_text, jsonable


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL log (empty if it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def append_epoch(path: str | Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Write `record`, dropping any earlier record of the same or a later epoch (a resumed run)."""
    p = Path(path)
    rec = jsonable(record)
    kept = [r for r in read_log(p) if r.get("epoch", -1) < rec.get("epoch", 0)]
    kept.append(rec)
    atomic_write_text(p, "".join(json.dumps(r) + "\n" for r in kept))
    return kept
