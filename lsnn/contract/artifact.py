"""The model.pt contract between search and compile: schema constants, save, safe load, checks.

Imports torch lazily so the compiler can import this module without torch (docs/ARTIFACT.md).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from lsnn.errors import MALFORMED, ArtifactError
from lsnn.io import atomic_path, to_numpy

ARTIFACT_FORMAT = "lsnn.model"
ARTIFACT_VERSION = 1
INPUT_NAME = "input"                      # the reserved name of the encoded input (a source, no neuron)
POPULATION_KINDS = ("lif", "readout")
SYNAPSE_KINDS = ("conv", "dense", "identity")
INTEGRAL_TOL = 1e-4


def save_artifact(artifact: dict[str, Any], path: str | os.PathLike) -> Path:
    """Validate and atomically write `artifact` to `path` (no half-written file on error)."""
    import torch

    validate_artifact(artifact, source=str(path))
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(artifact, tmp)
        try:  # the contract is that a plain weights_only load reads it: check before publishing
            torch.load(tmp, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ArtifactError(f"{path}: artifact holds a value that torch.load(weights_only=True) "
                                f"cannot read ({exc}); only tensors and plain containers are allowed") from None
    return path


def load_artifact(path: str | os.PathLike) -> dict[str, Any]:
    """Load model.pt with `weights_only=True` (no code runs) and check format and version."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file")
    if not zipfile.is_zipfile(path):
        raise ArtifactError(f"{path}: not a readable model file (not a torch.save archive)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        m = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        detail = f"it names {m.group(1)}" if m else type(exc).__name__
        raise ArtifactError(
            f"{path}: refused to load: it holds pickled objects other than tensors and plain "
            f"containers, which could run code (a foreign or unsafe file; {detail})"
        ) from None
    except Exception as exc:  # zip errors, truncated files, ...
        raise ArtifactError(f"{path}: not a readable model file ({type(exc).__name__}: "
                            f"{' '.join(str(exc).split())})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("format"), str) or obj["format"] != ARTIFACT_FORMAT:
        raise ArtifactError(f"{path}: not an lsnn model artifact (expected format '{ARTIFACT_FORMAT}')")
    version = obj.get("version")
    if type(version) is not int or version != ARTIFACT_VERSION:
        raise ArtifactError(
            f"{path}: artifact version {version!r} is not supported (this lsnn reads version {ARTIFACT_VERSION})"
        )
    validate_artifact(obj, source=str(path))
    return obj


def _need(d: dict, key: str, where: str) -> Any:
    if key not in d:
        raise ArtifactError(f"{where}: missing key '{key}'")
    return d[key]


def _is_integral(values: Any, tol: float = INTEGRAL_TOL) -> bool:
    arr = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.abs(arr - np.round(arr)) <= tol))


def _check_population(p: dict[str, Any], i: int, source: str, seen: dict[str, dict]) -> str:
    """Check population i; returns its name."""
    name = _need(p, "name", f"{source}: populations[{i}]")
    where = f"{source}: population '{name}'"
    if name in seen or name == INPUT_NAME:
        raise ArtifactError(f"{where}: duplicate or reserved name")
    kind = _need(p, "kind", where)
    if kind not in POPULATION_KINDS:
        raise ArtifactError(f"{where}: kind '{kind}' not one of {POPULATION_KINDS}")
    shape = _need(p, "shape", where)
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ArtifactError(f"{where}: shape must be [C, H, W] of positive ints, got {shape}")
    scale = float(_need(p, "scale", where))
    if not scale > 0:
        raise ArtifactError(f"{where}: scale must be > 0, got {scale}")
    bias = to_numpy(_need(p, "bias", where))
    if bias.shape != (shape[0],):
        raise ArtifactError(f"{where}: bias shape {bias.shape} != ({shape[0]},)")
    if not _is_integral(bias / scale):
        raise ArtifactError(f"{where}: bias / scale is not integral")
    if kind == "lif":
        vth = _need(p, "vth", where)
        if vth is None or not _is_integral(float(vth) / scale):
            raise ArtifactError(f"{where}: vth / scale is not integral (vth={vth}, scale={scale})")
    return name


def _check_synapse(s: dict[str, Any], i: int, source: str, pops: dict[str, dict]) -> tuple[str, int, int]:
    """Check synapse group i; returns (dst, first, end) of the dst channels it feeds."""
    name = _need(s, "name", f"{source}: synapses[{i}]")
    where = f"{source}: synapse '{name}'"
    kind = _need(s, "kind", where)
    if kind not in SYNAPSE_KINDS:
        raise ArtifactError(f"{where}: kind '{kind}' not one of {SYNAPSE_KINDS}")
    src, dst = _need(s, "src", where), _need(s, "dst", where)
    if src != INPUT_NAME and src not in pops:
        raise ArtifactError(f"{where}: src '{src}' is not a population")
    if dst not in pops:
        raise ArtifactError(f"{where}: dst '{dst}' is not a population")
    if abs(float(_need(s, "scale", where)) - float(pops[dst]["scale"])) > 1e-12 * max(1.0, float(pops[dst]["scale"])):
        raise ArtifactError(f"{where}: scale differs from dst population '{dst}' scale")
    w = to_numpy(_need(s, "weight", where)).astype(np.float64)
    wi = w / float(s["scale"])
    if not _is_integral(wi):
        raise ArtifactError(f"{where}: weight / scale is not integral (max residual "
                            f"{np.max(np.abs(wi - np.round(wi))):.3g})")
    mask = s.get("mask")
    if mask is not None:
        m = to_numpy(mask).astype(bool)
        if m.shape != w.shape:
            raise ArtifactError(f"{where}: mask shape {m.shape} != weight shape {w.shape}")
        if np.any(w[~m] != 0):
            raise ArtifactError(f"{where}: weights outside the mask are not zero")
    off = int(s.get("dst_channel_offset", 0))
    out_ch = int(pops[dst]["shape"][0]) if kind == "identity" else int(w.shape[0])
    if kind == "identity" and src != INPUT_NAME:
        out_ch = int(pops[src]["shape"][0])
    if off < 0 or off + out_ch > int(pops[dst]["shape"][0]):
        raise ArtifactError(f"{where}: output channels [{off}, {off + out_ch}) exceed dst '{dst}' "
                            f"channels {pops[dst]['shape'][0]}")
    return dst, off, off + out_ch


_CONTAINERS = {"dataset": dict, "input_encoding": dict, "neuron": dict, "populations": list, "synapses": list}


def _check_containers(a: dict[str, Any], source: str) -> None:
    """The top-level entries hold the container types the schema names (metrics: a dict if present)."""
    if not isinstance(a, dict):
        raise ArtifactError(f"{source}: expected a dict at the top level, got {type(a).__name__}")
    for key in ("format", "version", "T", *_CONTAINERS):
        _need(a, key, source)
    for key, kind in {**_CONTAINERS, **({"metrics": dict} if a.get("metrics") is not None else {})}.items():
        if not isinstance(a[key], kind):
            raise ArtifactError(f"{source}: '{key}' must be a {kind.__name__}, got {type(a[key]).__name__}")
    for key in ("populations", "synapses"):
        bad = [i for i, e in enumerate(a[key]) if not isinstance(e, dict)]
        if bad:
            raise ArtifactError(f"{source}: {key}[{bad[0]}] must be a dict, got {type(a[key][bad[0]]).__name__}")


def validate_artifact(a: dict[str, Any], source: str = "model.pt") -> None:
    """Check the structural invariants of docs/ARTIFACT.md; raise ArtifactError naming the key."""
    _check_containers(a, source)
    try:
        _validate_entries(a, source)
    except MALFORMED as exc:           # a value of the wrong type deep inside an entry
        raise ArtifactError(f"{source}: malformed entry ({type(exc).__name__}: {' '.join(str(exc).split())})") from None


def _validate_entries(a: dict[str, Any], source: str) -> None:
    """validate_artifact's checks of T, the populations and the synapse groups."""
    T = a["T"]
    if not isinstance(T, int) or T < 1:
        raise ArtifactError(f"{source}: 'T' must be a positive int, got {T!r}")
    pops: dict[str, dict] = {}
    for i, p in enumerate(a["populations"]):
        pops[_check_population(p, i, source, pops)] = p
    covered: dict[str, np.ndarray] = {n: np.zeros(int(p["shape"][0]), dtype=bool) for n, p in pops.items()}
    for i, s in enumerate(a["synapses"]):
        dst, c0, c1 = _check_synapse(s, i, source, pops)
        covered[dst][c0:c1] = True
    for n, cov in covered.items():
        if not cov.all():
            raise ArtifactError(f"{source}: population '{n}' has channels with no incoming synapse group")
