"""model.pt contract: safe load, version and structure checks (lsnn.contract.artifact)."""
import copy
import os

import pytest
import torch

from lsnn.contract.artifact import ARTIFACT_VERSION, load_artifact, save_artifact, validate_artifact
from lsnn.errors import ArtifactError


def tiny_artifact() -> dict:
    """input (1x4x4) -conv3x3-> stem LIF (2x4x4) -dense-> readout (3 classes)."""
    s = 0.01
    w = torch.tensor([1, -3, 5, -1, 0, 3, 1, 1, -7], dtype=torch.float32).reshape(1, 1, 3, 3).repeat(2, 1, 1, 1) * s
    mask = w != 0
    sr = 0.002
    wd = torch.arange(-16, 16, dtype=torch.float32).reshape(1, 32).repeat(3, 1) * sr
    return {
        "format": "lsnn.model", "version": ARTIFACT_VERSION, "created_by": "test",
        "dataset": {"name": "toy", "num_classes": 3, "input_shape": [1, 4, 4], "classes": ["a", "b", "c"]},
        "input_encoding": {"kind": "graded", "bits": 8, "offset": [0.0], "span": [1.0]},
        "T": 2, "neuron": {"model": "lif", "tau": 0.2},
        "genotype": {}, "backbone": {},
        "populations": [
            {"name": "stem", "kind": "lif", "shape": [2, 4, 4], "scale": s, "vth": 50 * s,
             "bias": torch.tensor([3 * s, -2 * s]), "tau": 0.2},
            {"name": "readout", "kind": "readout", "shape": [3, 1, 1], "scale": sr, "vth": None,
             "bias": torch.tensor([0.0, sr, -sr]), "tau": 0.0},
        ],
        "synapses": [
            {"name": "stem.conv", "kind": "conv", "src": "input", "dst": "stem", "weight": w, "mask": mask,
             "stride": 1, "padding": 1, "dst_channel_offset": 0, "bits": 8, "delta": 2 * s, "scale": s},
            {"name": "fc", "kind": "dense", "src": "stem", "dst": "readout", "weight": wd, "mask": None,
             "dst_channel_offset": 0, "bits": 8, "delta": 2 * sr, "scale": sr},
        ],
        "metrics": {}, "train": {},
    }


def test_round_trip(tmp_path):
    a = tiny_artifact()
    p = save_artifact(a, tmp_path / "m.pt")
    b = load_artifact(p)
    assert torch.equal(b["synapses"][0]["weight"], a["synapses"][0]["weight"])
    assert b["populations"][0]["vth"] == a["populations"][0]["vth"]
    assert [q.name for q in tmp_path.iterdir()] == ["m.pt"]  # no temp file left


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": "lsnn.model", "x": _Evil()}, p)
    with pytest.raises(ArtifactError, match="refused to load"):
        load_artifact(p)


def test_foreign_and_broken_files(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, p)
    with pytest.raises(ArtifactError, match="not an lsnn model artifact"):
        load_artifact(p)
    p.write_bytes(b"garbage")
    with pytest.raises(ArtifactError, match="not a readable model file"):
        load_artifact(p)
    with pytest.raises(ArtifactError, match="no such model file"):
        load_artifact(tmp_path / "missing.pt")
    a = tiny_artifact()
    a["version"] = 99
    torch.save(a, p)
    with pytest.raises(ArtifactError, match="artifact version 99 is not supported"):
        load_artifact(p)


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a["synapses"][0].__setitem__("weight", a["synapses"][0]["weight"] * 1.5), "weight / scale is not integral"),
    (lambda a: a["populations"][0].__setitem__("vth", 0.505), "vth / scale is not integral"),
    (lambda a: a["synapses"][1].__setitem__("src", "nowhere"), "src 'nowhere' is not a population"),
    (lambda a: a["synapses"][0].__setitem__("scale", 0.02), "scale differs from dst population 'stem'"),
    (lambda a: a["synapses"][0]["mask"].__setitem__((0, 0, 0, 0), False), "weights outside the mask are not zero"),
    (lambda a: a["synapses"][0].__setitem__("dst_channel_offset", 1), r"output channels \[1, 3\) exceed dst 'stem'"),
    (lambda a: a["populations"][1].__setitem__("bias", torch.zeros(2)), "bias shape"),
    (lambda a: a.pop("T"), "missing key 'T'"),
])
def test_invariants(mutate, message):
    a = copy.deepcopy(tiny_artifact())
    mutate(a)
    with pytest.raises(ArtifactError, match=message):
        validate_artifact(a)


def test_failed_save_leaves_nothing(tmp_path):
    a = tiny_artifact()
    a["populations"][0]["vth"] = 0.505
    with pytest.raises(ArtifactError):
        save_artifact(a, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_values_a_safe_load_cannot_read(tmp_path):
    a = tiny_artifact()
    a["train"]["torch"] = torch.__version__  # a TorchVersion object, not a plain str
    if type(torch.__version__) is str:  # pragma: no cover - other torch builds
        a["train"]["torch"] = _Evil()
    with pytest.raises(ArtifactError, match="cannot read"):
        save_artifact(a, tmp_path / "m.pt")
    assert list(tmp_path.iterdir()) == []
