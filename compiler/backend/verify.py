"""A compiled net is checked when it is read: nothing altered since compiling, still chip-legal.

- `content_digest(h5file)`: sha256 over every dataset (name, dtype, shape, bytes) and every
  attribute (name, value) of the file except the digest itself, in sorted order. `write_net`
  stores it as the root attribute ``content_sha256``; `read_net` recomputes it, so any change
  to a weight, delay, threshold or attribute after compiling (in ``/layer`` or ``/lsnn``) is
  refused with one line naming the file (the digest says that something changed, not where).
- `recheck_rules(graph)`: the compiler's design rules again, against the hardware profile the
  net was compiled for (recorded in ``meta['profile']``); DesignRuleError lists every violation.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

DIGEST_ATTR = "content_sha256"


def _attr_bytes(value: Any) -> bytes:
    arr = np.asarray(value)
    if arr.dtype.kind in "OUS":
        return repr(value.decode() if isinstance(value, bytes) else value).encode()
    return arr.dtype.str.encode() + repr(arr.shape).encode() + arr.tobytes()


def content_digest(f: Any) -> str:
    """sha256 hex digest of an open h5py File's datasets and attributes (the digest attribute excluded)."""
    import h5py

    h = hashlib.sha256()
    items: list[tuple[str, Any]] = []
    f.visititems(lambda name, obj: items.append((name, obj)))
    for name, obj in [("", f)] + sorted(items, key=lambda kv: kv[0]):
        for key in sorted(obj.attrs):
            if name == "" and key == DIGEST_ATTR:
                continue
            h.update(f"@{name}/{key}=".encode() + _attr_bytes(obj.attrs[key]))
        if isinstance(obj, h5py.Dataset):
            data = np.asarray(obj[()])
            h.update(f"#{name}:{data.dtype.str}:{data.shape}:".encode())
            h.update(data.tobytes() if data.dtype.kind not in "OUS" else repr(data.tolist()).encode())
    return h.hexdigest()


def recheck_rules(graph: Any, source: str) -> None:
    """Re-run the design rules against the profile recorded at compile time (none recorded: skip)."""
    from lsnn.compiler.passes.check_rules import find_violations
    from lsnn.errors import DesignRuleError
    from lsnn.hw_profiles.profile import profile_from_dict

    recorded = graph.meta.get("profile") if isinstance(graph.meta, dict) else None
    if not recorded:
        return
    profile = profile_from_dict(recorded, source=f"{source}: recorded profile")
    violations = find_violations(graph, profile)
    if violations:
        raise DesignRuleError(violations, target=profile.name)
