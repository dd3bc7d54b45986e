"""Read run directories (summary.json + config.yaml) into rows, print them, group them by cost point."""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from lsnn.errors import ConfigError

REQUIRED = ("test_accuracy", "model_size_bytes", "bit_synops")


@dataclass(frozen=True)
class RunRow:
    """One finished run: where it is, how it was made, and what it reached."""

    run: str
    strategy: str
    seed: int | None
    point: str
    test_accuracy: float
    model_size_bytes: float
    bit_synops: float
    measured_synops: float | None = None
    T: int | None = None
    bits_per_cell: list[int] | None = None
    prune_rate: float | None = None
    search_seconds: float | None = None
    retrain_seconds: float | None = None
    wall_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON types (the `runs` entries of compare.json)."""
        return asdict(self)


@dataclass(frozen=True)
class PointStats:
    """The runs of one (strategy, cost point) over seeds: n, mean and population std."""

    strategy: str
    point: str
    n: int
    seeds: list[int | None] = field(default_factory=list)
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Flat plain-JSON form: `<metric>_mean` and `<metric>_std` for each metric."""
        out: dict[str, Any] = {"strategy": self.strategy, "point": self.point, "n": self.n, "seeds": self.seeds}
        for key in REQUIRED:
            out[f"{key}_mean"] = self.mean[key]
            out[f"{key}_std"] = self.std[key]
        return out


def _load_summary(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: missing (not a finished `lsnn search` run directory)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in REQUIRED:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{path}: '{key}' must be a finite number, got {value!r}")
    return data


def _load_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not readable YAML ({' '.join(str(exc).split())})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__}")
    return data or {}


def _measured_synops(deploy: Any) -> float | None:
    if not isinstance(deploy, Mapping) or "error" in deploy:
        return None
    counts = deploy.get("counts_per_sample")
    value = counts.get("measured_synops") if isinstance(counts, Mapping) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def cost_point_label(strategy: str, preset: Any, l1: Any, l2: Any, p: Any, bits: Any, T: Any,
                     budget_kb: Any = None) -> str:
    """The cost point a run aims at: bits and T for "hand", the memory budget and p for
    "spikenas", else preset, l1/l2 and p where known."""
    if strategy == "hand":
        bits_text = "/".join(str(b) for b in bits) if isinstance(bits, list) else "?"
        return f"bits {bits_text} T={T if T is not None else '?'}"
    if strategy == "spikenas":
        budget = "no budget" if budget_kb is None else f"budget {budget_kb:g} kB"
        return budget if p is None else f"{budget} p={p:g}"
    parts = [str(preset)] if preset else []
    if l1 is not None and l2 is not None:
        parts.append(f"l1={l1:g} l2={l2:g}")
    if p is not None:
        parts.append(f"p={p:g}")
    return " ".join(parts) or "default"


NUMBER = (int, float)
KINDS: dict[str, tuple[type, ...]] = {"strategy": (str,), "preset": (str,), "seed": (int,), "T": (int,),
                                      "bits_per_cell": (list,)}


def _get(source: Mapping[str, Any], path: Path, key: str) -> Any:
    """source[key] (None when absent), checked against its kind (numbers unless KINDS says otherwise)."""
    value = source.get(key)
    kinds = KINDS.get(key, NUMBER)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"{path}: '{key}' has the wrong type ({type(value).__name__}: {value!r})")
    if key == "bits_per_cell" and not all(isinstance(b, int) and not isinstance(b, bool) for b in value):
        raise ConfigError(f"{path}: 'bits_per_cell' must be a list of integers, got {value!r}")
    return value


def _first(key: str, *sources: tuple[Mapping[str, Any], Path]) -> Any:
    """The first non-None value of `key` in the (mapping, file) sources, type-checked."""
    for source, path in sources:
        value = _get(source, path, key)
        if value is not None:
            return value
    return None


OPTIONAL = ("T", "bits_per_cell", "prune_rate", "search_seconds", "retrain_seconds", "wall_seconds")


def read_run(path: str | Path) -> RunRow:
    """Read one run directory; ConfigError naming the file when summary.json is missing or malformed."""
    path = Path(path)
    s = (_load_summary(path / "summary.json"), path / "summary.json")
    c = (_load_config(path / "config.yaml"), path / "config.yaml")
    got = {key: _first(key, s) for key in OPTIONAL}
    strategy = _first("strategy", s, c) or "litesnn"
    p = got["prune_rate"] if got["prune_rate"] is not None else _first("p", c)
    point = cost_point_label(strategy, _first("preset", s, c), _first("l1", s, c), _first("l2", s, c), p,
                             got["bits_per_cell"], got["T"], _first("memory_budget_kb", s, c))
    return RunRow(run=str(path), strategy=strategy, seed=_first("seed", s, c), point=point,
                  **{key: float(s[0][key]) for key in REQUIRED},
                  measured_synops=_measured_synops(s[0].get("deploy")), **got)


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "/".join(str(v) for v in value)
    if isinstance(value, float) or scale != 1.0:
        return f"{value / scale:.{digits}f}"
    return str(value)


COLUMNS = ("run", "strategy", "seed", "cost point", "acc %", "size kB", "Bit-SynOps M", "measured SynOps M",
           "T", "bits", "p", "search s", "retrain s", "wall s")


def rows_to_markdown(rows: Sequence[RunRow]) -> str:
    """A Markdown table with one line per run (missing values as '-')."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r.run, r.strategy, _fmt(r.seed), r.point, _fmt(r.test_accuracy, 0.01), _fmt(r.model_size_bytes, 1e3),
                 _fmt(r.bit_synops, 1e6), _fmt(r.measured_synops, 1e6), _fmt(r.T), _fmt(r.bits_per_cell),
                 _fmt(r.prune_rate), _fmt(r.search_seconds, digits=1), _fmt(r.retrain_seconds, digits=1),
                 _fmt(r.wall_seconds, digits=1)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def group_points(rows: Sequence[RunRow]) -> list[PointStats]:
    """Rows grouped by (strategy, cost point), in order of first appearance, with mean and population std."""
    groups: dict[tuple[str, str], list[RunRow]] = {}
    for r in rows:
        groups.setdefault((r.strategy, r.point), []).append(r)
    out = []
    for (strategy, point), members in groups.items():
        values = {key: [float(getattr(r, key)) for r in members] for key in REQUIRED}
        out.append(PointStats(strategy=strategy, point=point, n=len(members), seeds=[r.seed for r in members],
                              mean={k: statistics.fmean(v) for k, v in values.items()},
                              std={k: statistics.pstdev(v) for k, v in values.items()}))
    return out
