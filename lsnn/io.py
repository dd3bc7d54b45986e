"""File helpers every stage shares: atomic writes (no half-written output on error) and
conversion of tensors / NumPy values into plain JSON types."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np


def default_file_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file (0o666 minus the umask);
    temp files are created 0o600, so a published file gets this mode instead."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """Temp files beside each of `paths`, renamed into place together when the block succeeds.

    On any error (in the block or a rename) every temp file is removed and the outputs already
    renamed are removed again: all of the files are published, or none."""
    targets = [Path(p) for p in paths]
    temps: list[Path] = []
    done: list[Path] = []
    try:
        for p in targets:               # one by one: a failure leaves the earlier temps to clean up
            temps.append(_temp_beside(p))
        yield temps
        mode = default_file_mode()
        for tmp, target in zip(temps, targets):
            os.chmod(tmp, mode)
            os.replace(tmp, target)
            done.append(target)
    except BaseException:
        for p in done:
            p.unlink(missing_ok=True)
        raise
    finally:
        for t in temps:
            t.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temp file beside `path` that replaces `path` when the block succeeds (else is removed)."""
    with atomic_paths(path) as (tmp,):
        yield tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, nan_as_none: bool = False) -> Path:
    """Write `jsonable(obj)` to `path` atomically (strict JSON: no NaN or Infinity tokens)."""
    text = json.dumps(jsonable(obj, nan_as_none=nan_as_none), indent=indent, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def to_numpy(value: Any) -> np.ndarray:
    """A NumPy array of a torch tensor (any dtype, any device), an array or a nested list;
    needs no torch import."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":      # NumPy has no bfloat16
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def jsonable(value: Any, nan_as_none: bool = False) -> Any:
    """Plain JSON types of nested data: mappings (str keys), sequences, tensors and arrays
    (lists), NumPy scalars; non-finite floats become None with `nan_as_none`; any other object
    its str()."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, nan_as_none) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, nan_as_none) for v in value]
    if hasattr(value, "detach") or isinstance(value, np.ndarray):
        return jsonable(to_numpy(value).tolist(), nan_as_none)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if nan_as_none and not math.isfinite(value) else value
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)

