"""The machine a run or benchmark ran on, for quoting absolute figures beside it (timings differ between
machines by 2x or more)."""
from __future__ import annotations

import os
import platform
from pathlib import Path

_FLAGS = ("avx2", "avx512f", "avx512_vnni", "amx_int8", "amx_bf16")


def cpu_model() -> str:
    """lscpu's model name, e.g. 'Intel(R) Xeon(R) Processor' (platform's guess if unreadable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_description() -> str:
    """Model name, family/model numbers, cores and the SIMD / matrix extensions that change speed."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if ":" in line:
                k, v = (s.strip() for s in line.split(":", 1))
                fields.setdefault(k, v)
    except OSError:
        return cpu_model()
    flags = set(fields.get("flags", "").split())
    ext = ", ".join(f for f in _FLAGS if f in flags) or "no AVX2"
    return (f"{cpu_model()} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')}; {ext}), "
            f"{os.cpu_count()} cores")
