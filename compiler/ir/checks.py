"""The IR's constants and the small validators its nodes use (each raises IRError naming the node and key)."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from lsnn.contract.artifact import INPUT_NAME, POPULATION_KINDS, SYNAPSE_KINDS  # noqa: F401 - the IR's names
from lsnn.contract.chip import DEFAULT_BIAS_EXP, DEFAULT_DU, DEFAULT_DV, STATE_BITS, V_MAX  # noqa: F401
from lsnn.errors import IRError

IR_VERSION = 1
SIGN_MODES = ("mixed", "excitatory", "inhibitory")
INPUT_ENCODINGS = ("graded", "binary")
SYNAPSE_ENCODINGS = ("dense", "sparse")
STAGES = ("float", "integer")


# ----------------------------------------------------------------------------------------------
# small validators


def _fail(where: str, msg: str) -> None:
    raise IRError(f"{where}: {msg}")


def _int(value: Any, where: str, key: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        _fail(where, f"'{key}' must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        _fail(where, f"'{key}' must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        _fail(where, f"'{key}' must be <= {hi}, got {value}")
    return value


def _float(value: Any, where: str, key: str, positive: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        _fail(where, f"'{key}' must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        _fail(where, f"'{key}' must be finite, got {value}")
    if positive and not value > 0:
        _fail(where, f"'{key}' must be > 0, got {value}")
    return value


def _choice(value: Any, where: str, key: str, options: Sequence[str]) -> str:
    if value not in options:
        _fail(where, f"'{key}' must be one of {', '.join(options)}; got {value!r}")
    return str(value)


def _shape3(value: Any, where: str, key: str = "shape") -> tuple[int, int, int]:
    try:
        shape = tuple(value)
    except TypeError:
        _fail(where, f"'{key}' must be (C, H, W), got {value!r}")
    if len(shape) != 3:
        _fail(where, f"'{key}' must have 3 entries (C, H, W), got {shape}")
    return tuple(_int(s, where, key, lo=1) for s in shape)  # type: ignore[return-value]


def frozen_array(value: Any, where: str, key: str, dtype: Any = None) -> np.ndarray:
    """A read-only ndarray of `value` (no copy if it already is one of the right dtype)."""
    if isinstance(value, np.ndarray) and not value.flags.writeable and (dtype is None or value.dtype == dtype):
        return value
    try:
        arr = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        _fail(where, f"'{key}' is not a numeric array ({exc})")
    if arr.dtype == object:
        _fail(where, f"'{key}' is not a numeric array")
    arr.setflags(write=False)
    return arr


def _numeric_array(value: Any, where: str, key: str) -> np.ndarray:
    """Integer arrays stay int32, anything else becomes float64 (and must be finite)."""
    arr = np.asarray(value)
    if arr.dtype.kind in "iu":
        if arr.size and (arr.min() < np.iinfo(np.int32).min or arr.max() > np.iinfo(np.int32).max):
            _fail(where, f"'{key}' has integers outside int32")
        return frozen_array(arr, where, key, np.int32)
    if arr.dtype.kind not in "fb":
        _fail(where, f"'{key}' must be numeric, got dtype {arr.dtype}")
    out = frozen_array(arr, where, key, np.float64)
    if not np.all(np.isfinite(out)):
        _fail(where, f"'{key}' has non-finite values")
    return out


def conv_out_hw(h: int, w: int, k_h: int, k_w: int, stride: int, padding: int) -> tuple[int, int]:
    """Output spatial size of a 2-D convolution (torch's formula, dilation 1)."""
    return (h + 2 * padding - k_h) // stride + 1, (w + 2 * padding - k_w) // stride + 1


def subsample_hw(h: int, w: int, stride: int) -> tuple[int, int]:
    """Output spatial size of a stride-s 1x1 identity (= conv 1x1, padding 0)."""
    return (h - 1) // stride + 1, (w - 1) // stride + 1
