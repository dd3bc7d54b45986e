"""Hardware profiles: a YAML file per target, loaded into a validated frozen dataclass.

Every key is required and typed; an unknown, missing, mistyped or out-of-range key raises
`ConfigError` naming the file and the key path (e.g. ``loihi2.yaml: 'core.neurons' must be an
int >= 1, got 'many'``). `load_profile(target=...)` picks a bundled profile
(`lsnn.hw_profiles.bundled_profiles()`), `load_profile(path=...)` a custom file. A custom file may
start from a bundled profile (``base: loihi2``) and give only its own ``name`` and the keys it changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

from lsnn.errors import ConfigError

PROFILE_VERSION = 1
SIGN_MODES = ("mixed", "excitatory", "inhibitory")


@dataclass(frozen=True)
class Profile:
    """A neuromorphic target's limits and energy figures (units in the field names)."""

    name: str
    description: str
    # chip
    cores_per_chip: int
    max_chips: int
    # per core
    neurons_per_core: int
    synaptic_memory_bits_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    # synapses
    weight_bits: tuple[int, ...]          # allowed hardware weight widths (incl. sign bit for mixed)
    weight_exp_min: int
    weight_exp_max: int
    sign_modes: tuple[str, ...]
    max_delay: int                        # extra steps a synapse can add
    # neurons
    vth_mantissa_bits: int
    bias_mantissa_bits: int               # signed
    bias_exponent_bits: int               # unsigned exponent: 0 .. 2^bits - 1
    state_bits: int
    # spikes
    graded_spike_bits: int                # payload bits of graded spikes; 0 = binary only
    # energy
    energy_synop_pj: float
    energy_neuron_update_pj: float
    energy_spike_pj: float
    source: str = ""                      # the YAML file it came from

    @property
    def max_cores(self) -> int:
        return self.cores_per_chip * self.max_chips

    @property
    def max_weight_bits(self) -> int:
        return max(self.weight_bits)

    @property
    def vth_max(self) -> int:
        return 2 ** self.vth_mantissa_bits - 1

    @property
    def bias_range(self) -> tuple[int, int]:
        half = 2 ** (self.bias_mantissa_bits - 1)
        return -half, half - 1

    @property
    def bias_exp_max(self) -> int:
        return 2 ** self.bias_exponent_bits - 1

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v, tuple) else v) for f in fields(self)
                for v in [getattr(self, f.name)]}


# key path in YAML -> (field, kind, lower bound, upper bound)
_SCHEMA: dict[str, tuple[str, str, Optional[float], Optional[float]]] = {
    "name": ("name", "str", None, None),
    "description": ("description", "str", None, None),
    "chip.cores_per_chip": ("cores_per_chip", "int", 1, None),
    "chip.max_chips": ("max_chips", "int", 1, None),
    "core.neurons": ("neurons_per_core", "int", 1, None),
    "core.synaptic_memory_bits": ("synaptic_memory_bits_per_core", "int", 1, None),
    "core.input_axons": ("input_axons_per_core", "int", 1, None),
    "core.output_axons": ("output_axons_per_core", "int", 1, None),
    "synapse.weight_bits": ("weight_bits", "intlist", 1, 32),
    "synapse.weight_exponent_min": ("weight_exp_min", "int", -32, 32),
    "synapse.weight_exponent_max": ("weight_exp_max", "int", -32, 32),
    "synapse.sign_modes": ("sign_modes", "signlist", None, None),
    "synapse.max_delay": ("max_delay", "int", 0, None),
    "neuron.vth_mantissa_bits": ("vth_mantissa_bits", "int", 1, 32),
    "neuron.bias_mantissa_bits": ("bias_mantissa_bits", "int", 2, 32),
    "neuron.bias_exponent_bits": ("bias_exponent_bits", "int", 0, 8),
    "neuron.state_bits": ("state_bits", "int", 1, 64),
    "spikes.graded_spike_bits": ("graded_spike_bits", "int", 0, 32),
    "energy.synaptic_op_pj": ("energy_synop_pj", "float", 0, None),
    "energy.neuron_update_pj": ("energy_neuron_update_pj", "float", 0, None),
    "energy.spike_pj": ("energy_spike_pj", "float", 0, None),
}
_TOP = {"version"} | {k.split(".")[0] for k in _SCHEMA}
_SECTIONS = {k.split(".")[0] for k in _SCHEMA if "." in k}


def profile_to_yaml_dict(profile: Profile) -> dict[str, Any]:
    """The YAML form of `profile` (what `profile_from_dict` reads back to an equal Profile)."""
    flat = profile.to_dict()
    out: dict[str, Any] = {"version": PROFILE_VERSION}
    for key, (name, _, _, _) in _SCHEMA.items():
        if flat.get(name) is None:
            continue
        if "." in key:
            sec, sub = key.split(".")
            out.setdefault(sec, {})[sub] = flat[name]
        else:
            out[key] = flat[name]
    return out


def _bad(source: str, key: str, msg: str) -> ConfigError:
    return ConfigError(f"{source}: '{key}' {msg}")


def _typed(source: str, key: str, value: Any, kind: str, lo: Optional[float], hi: Optional[float]) -> Any:
    rng = ""
    if lo is not None and hi is not None:
        rng = f" in [{lo}, {hi}]"
    elif lo is not None:
        rng = f" >= {lo}"
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise _bad(source, key, f"must be a non-empty string, got {value!r}")
        return value
    if kind in ("int", "float"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if kind == "float":
            ok = ok or isinstance(value, float)
        if not ok:
            raise _bad(source, key, f"must be {'an int' if kind == 'int' else 'a number'}{rng}, got {value!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _bad(source, key, f"must be{rng}, got {value!r}")
        return float(value) if kind == "float" else int(value)
    if kind == "intlist":
        if not isinstance(value, list) or not value:
            raise _bad(source, key, f"must be a non-empty list of ints{rng}, got {value!r}")
        out = [_typed(source, f"{key}[{i}]", v, "int", lo, hi) for i, v in enumerate(value)]
        if len(set(out)) != len(out):
            raise _bad(source, key, f"has duplicate entries: {value!r}")
        return tuple(sorted(out))
    if kind == "signlist":
        if not isinstance(value, list) or not value:
            raise _bad(source, key, f"must be a non-empty list of {', '.join(SIGN_MODES)}; got {value!r}")
        for i, v in enumerate(value):
            if v not in SIGN_MODES:
                raise _bad(f"{source}", f"{key}[{i}]", f"must be one of {', '.join(SIGN_MODES)}; got {v!r}")
        return tuple(value)
    raise AssertionError(kind)  # pragma: no cover - schema bug


def profile_from_dict(data: Any, source: str = "<profile>") -> Profile:
    """Validate a parsed YAML mapping and build the Profile (ConfigError naming file and key)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a profile must be a YAML mapping, got {type(data).__name__}")
    for key in data:
        if key not in _TOP:
            raise ConfigError(f"{source}: unknown key '{key}' (known: {', '.join(sorted(_TOP))})")
    if data.get("version") != PROFILE_VERSION:
        if "version" not in data:
            raise ConfigError(f"{source}: missing key 'version'")
        raise ConfigError(f"{source}: 'version' must be {PROFILE_VERSION}, got {data['version']!r}")
    for sec in _SECTIONS:
        if sec in data and not isinstance(data[sec], dict):
            raise ConfigError(f"{source}: '{sec}' must be a mapping, got {data[sec]!r}")
        known = {k.split(".", 1)[1] for k in _SCHEMA if k.startswith(sec + ".")}
        for sub in (data.get(sec) or {}):
            if sub not in known:
                raise ConfigError(f"{source}: unknown key '{sec}.{sub}' (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for path, (fname, kind, lo, hi) in _SCHEMA.items():
        node: Any = data
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{source}: missing key '{path}'")
            node = node[part]
        values[fname] = _typed(source, path, node, kind, lo, hi)
    if values["weight_exp_min"] > values["weight_exp_max"]:
        raise _bad(source, "synapse.weight_exponent_min", f"must be <= synapse.weight_exponent_max "
                   f"({values['weight_exp_max']}), got {values['weight_exp_min']}")
    return Profile(**values, source=source)


def _read_yaml(file: Path, source: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from None


def merge_base(data: Any, source: str) -> Any:
    """Resolve ``base: <bundled target>``: the bundled profile's mapping with `data`'s keys laid
    over it, section by section. The file must name itself (``name``); bases do not chain."""
    from lsnn.hw_profiles import bundled_profiles

    if not isinstance(data, dict) or "base" not in data:
        return data
    over = dict(data)
    base = over.pop("base")
    bundled = bundled_profiles()
    if not isinstance(base, str) or base not in bundled:
        raise ConfigError(f"{source}: 'base' must name a bundled profile ({', '.join(sorted(bundled))}), got {base!r}")
    if "name" not in over:
        raise ConfigError(f"{source}: a profile with 'base' must set its own 'name'")
    merged = dict(_read_yaml(bundled[base], bundled[base].name))
    for key, value in over.items():
        if key in _SECTIONS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def load_profile(target: Optional[str] = None, path: Optional[str | os.PathLike] = None) -> Profile:
    """Load a bundled profile by name, or a YAML file by path (exactly one of the two)."""
    from lsnn.hw_profiles import bundled_profiles

    if (target is None) == (path is None):
        raise ConfigError("give exactly one of a target name or a profile file")
    if target is not None:
        bundled = bundled_profiles()
        if target not in bundled:
            raise ConfigError(f"unknown target '{target}' (available: {', '.join(sorted(bundled))})")
        file = bundled[target]
    else:
        file = Path(path)  # type: ignore[arg-type]
        if not file.is_file():
            raise ConfigError(f"{file}: no such profile file")
    source = file.name if target is not None else str(file)
    data = _read_yaml(file, source)
    if target is None:
        data = merge_base(data, source)
    return profile_from_dict(data, source=source)
