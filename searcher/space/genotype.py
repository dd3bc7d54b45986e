"""The decoded architecture as a small immutable value, saved as genotype.json beside the model.

Each cell has its own edges and bitwidth (alpha and beta are per cell in our search space).
Inputs of a node are indexed 0 = s0 (output of cell k-2), 1 = s1 (output of cell k-1),
2 + i = node i of the same cell. Op names come from OP_NAMES (a registry, never eval).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsnn.errors import MALFORMED, ConfigError

GENOTYPE_VERSION = 1
OP_NAMES = ("conv3x3", "skip")


@dataclass(frozen=True)
class Edge:
    """One kept edge into a node: the op applied to input `src`."""

    op: str
    src: int

    def __post_init__(self) -> None:
        if self.op not in OP_NAMES:
            raise ConfigError(f"unknown op '{self.op}' (supported: {', '.join(OP_NAMES)})")
        if self.src < 0:
            raise ConfigError(f"edge source index must be >= 0, got {self.src}")


@dataclass(frozen=True)
class CellGene:
    """One decoded cell: whether it reduces, its weight bitwidth, and the edges of each node."""

    reduction: bool
    bits: int
    nodes: tuple[tuple[Edge, ...], ...]

    def __post_init__(self) -> None:
        for j, edges in enumerate(self.nodes):
            if not edges:
                raise ConfigError(f"node {j} has no incoming edge")
            for e in edges:
                if e.src >= 2 + j:
                    raise ConfigError(f"node {j}: edge from input {e.src} is not an earlier node or cell input")


@dataclass(frozen=True)
class Genotype:
    """A whole decoded network: backbone choices plus one CellGene per cell and the searched T."""

    cells: tuple[CellGene, ...]
    T: int
    C: int
    prune_rate: float
    num_classes: int
    input_shape: tuple[int, int, int]
    aux_cell: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.T < 1:
            raise ConfigError(f"T must be >= 1, got {self.T}")
        if not self.cells:
            raise ConfigError("a genotype needs at least one cell")

    @property
    def reductions(self) -> tuple[int, ...]:
        return tuple(i for i, c in enumerate(self.cells) if c.reduction)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": GENOTYPE_VERSION,
            "T": self.T,
            "C": self.C,
            "prune_rate": self.prune_rate,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "aux_cell": self.aux_cell,
            "cells": [
                {"reduction": c.reduction, "bits": c.bits,
                 "nodes": [[[e.op, e.src] for e in node] for node in c.nodes]}
                for c in self.cells
            ],
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "genotype") -> "Genotype":
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: a genotype is a JSON object, got {type(d).__name__}")
        try:
            if d.get("version") != GENOTYPE_VERSION:
                raise ConfigError(f"{source}: genotype version {d.get('version')!r} is not {GENOTYPE_VERSION}")
            cells = tuple(
                CellGene(reduction=bool(c["reduction"]), bits=int(c["bits"]),
                         nodes=tuple(tuple(Edge(str(op), int(src)) for op, src in node) for node in c["nodes"]))
                for c in d["cells"]
            )
            return cls(cells=cells, T=int(d["T"]), C=int(d["C"]), prune_rate=float(d["prune_rate"]),
                       num_classes=int(d["num_classes"]), input_shape=tuple(int(v) for v in d["input_shape"]),
                       aux_cell=None if d.get("aux_cell") is None else int(d["aux_cell"]),
                       meta=dict(d.get("meta", {})))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        except MALFORMED as exc:
            raise ConfigError(f"{source}: malformed genotype ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())})") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Genotype":
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: no such genotype file")
        try:
            d = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: not valid JSON ({exc})") from None
        return cls.from_dict(d, source=str(p))
