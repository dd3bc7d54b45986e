"""Hardware profiles: bundled figures, every value sourced, ConfigError naming file and key."""
from __future__ import annotations

import re

import pytest
import yaml

from lsnn.errors import ConfigError
from lsnn.hw_profiles import bundled_profiles
from lsnn.hw_profiles.profile import load_profile, profile_from_dict


def test_bundled_figures():
    l1, l2, tiny = (load_profile(target=t) for t in ("loihi1", "loihi2", "tiny"))
    assert (l1.cores_per_chip, l1.neurons_per_core, l1.input_axons_per_core, l1.output_axons_per_core) == \
        (128, 1024, 4096, 4096)
    assert l1.synaptic_memory_bits_per_core == 16384 * 64
    assert (l1.weight_exp_min, l1.weight_exp_max, l1.vth_mantissa_bits, l1.bias_mantissa_bits,
            l1.bias_exponent_bits, l1.state_bits, l1.graded_spike_bits) == (-7, 7, 17, 13, 3, 24, 0)
    assert l1.energy_synop_pj == 23.6 and l1.bias_range == (-4096, 4095) and l1.vth_max == 131071
    assert (l2.neurons_per_core, l2.max_delay, l2.cores_per_chip) == (8192, 62, 128) and l2.graded_spike_bits > 0
    assert tiny.max_cores == 16 and tiny.source == "tiny.yaml"


@pytest.mark.parametrize("name", sorted(bundled_profiles()))
def test_every_bundled_value_has_a_source_comment(name):
    for line in bundled_profiles()[name].read_text().splitlines():
        m = re.match(r"^\s+(\w+):\s*(\S.*)$", line)
        if m:   # a leaf value inside a section
            assert "#" in m.group(2), f"{name}: '{m.group(1)}' has no source or '# estimate' comment"


def _base() -> dict:
    return yaml.safe_load(bundled_profiles()["tiny"].read_text())


@pytest.mark.parametrize("edit,message", [
    (lambda d: d.update(foo=1), "p.yaml: unknown key 'foo'"),
    (lambda d: d["core"].update(lanes=4), "p.yaml: unknown key 'core.lanes'"),
    (lambda d: d["core"].pop("neurons"), "p.yaml: missing key 'core.neurons'"),
    (lambda d: d.pop("energy"), "p.yaml: missing key 'energy.synaptic_op_pj'"),
    (lambda d: d["core"].update(neurons="many"), "p.yaml: 'core.neurons' must be an int >= 1, got 'many'"),
    (lambda d: d["core"].update(neurons=True), "p.yaml: 'core.neurons' must be an int >= 1, got True"),
    (lambda d: d["core"].update(neurons=0), "p.yaml: 'core.neurons' must be >= 1, got 0"),
    (lambda d: d["synapse"].update(weight_bits=[1, 1]), "p.yaml: 'synapse.weight_bits' has duplicate entries"),
    (lambda d: d["synapse"].update(weight_bits=[0, 2]), "p.yaml: 'synapse.weight_bits[0]' must be in [1, 32], got 0"),
    (lambda d: d["synapse"].update(sign_modes=["both"]), "p.yaml: 'synapse.sign_modes[0]' must be one of"),
    (lambda d: d["synapse"].update(weight_exponent_min=9), "p.yaml: 'synapse.weight_exponent_min' must be <="),
    (lambda d: d["energy"].update(spike_pj=-1.0), "p.yaml: 'energy.spike_pj' must be >= 0, got -1.0"),
    (lambda d: d.update(version=2), "p.yaml: 'version' must be 1, got 2"),
    (lambda d: d.pop("version"), "p.yaml: missing key 'version'"),
    (lambda d: d.update(core=[1]), "p.yaml: 'core' must be a mapping"),
])
def test_profile_errors_name_file_and_key(edit, message):
    d = _base()
    edit(d)
    with pytest.raises(ConfigError) as info:
        profile_from_dict(d, source="p.yaml")
    assert str(info.value).startswith(message)


def test_load_profile_files_and_targets(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump(_base()))
    p = load_profile(path=f)
    assert p.name == "tiny" and p.source == str(f)
    with pytest.raises(ConfigError, match=r"unknown target 'loihi9' \(available: loihi1, loihi2, tiny\)$"):
        load_profile(target="loihi9")
    with pytest.raises(ConfigError, match="no such profile file"):
        load_profile(path=tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("core: [")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_profile(path=tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="a profile must be a YAML mapping"):
        load_profile(path=tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="exactly one"):
        load_profile()


def test_two_board_example_differs_from_loihi2_only_in_chips():
    """examples/loihi2_2boards.yaml (the Speech Commands example's target) extends the bundled
    loihi2 profile (`base: loihi2`) with twice the chips and nothing else."""
    from dataclasses import asdict
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "loihi2_2boards.yaml"
    two, one = asdict(load_profile(path=path)), asdict(load_profile(target="loihi2"))
    differ = {k for k in one if k != "source" and one[k] != two[k]}
    assert differ == {"name", "description", "max_chips"}
    assert two["max_chips"] == 2 * one["max_chips"] == 16


def test_base_overrides_section_keys_and_keeps_the_rest(tmp_path):
    f = tmp_path / "slow.yaml"
    f.write_text("base: tiny\nname: slow\ncore:\n  neurons: 7\nenergy:\n  spike_pj: 9.5\n")
    p, tiny = load_profile(path=f), load_profile(target="tiny")
    assert (p.name, p.neurons_per_core, p.energy_spike_pj) == ("slow", 7, 9.5)
    assert p.synaptic_memory_bits_per_core == tiny.synaptic_memory_bits_per_core    # same section, kept
    assert p.energy_synop_pj == tiny.energy_synop_pj and p.max_cores == tiny.max_cores
    assert p.description == tiny.description and p.source == str(f)


@pytest.mark.parametrize("text, msg", [
    ("base: loihi9\nname: x\n", r"'base' must name a bundled profile \(loihi1, loihi2, tiny\), got 'loihi9'$"),
    ("base: tiny\ncore:\n  neurons: 7\n", "a profile with 'base' must set its own 'name'$"),
    ("base: tiny\nname: x\ncore:\n  neurons: 0\n", r"'core.neurons' must be >= 1, got 0$"),
    ("base: tiny\nname: x\ncore:\n  nerons: 7\n", r"unknown key 'core.nerons'"),
])
def test_base_errors_name_the_file_and_key(tmp_path, text, msg):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=msg) as info:
        load_profile(path=f)
    assert str(info.value).startswith(f"{f}: ")
