"""A compiled net is verified when read: altered content (digest) and broken design rules (the
profile recorded at compile time) are refused with one line; an intact net reads back exactly."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from lsnn.compiler.backend.netx import read_net, write_net
from lsnn.compiler.backend.verify import DIGEST_ATTR
from lsnn.compiler.pipeline import compile_artifact
from lsnn.errors import ArtifactError, DesignRuleError
from lsnn.hw_profiles.profile import load_profile, profile_from_dict, profile_to_yaml_dict
from tests.factories.compiler import skip_concat_artifact

LOIHI2 = load_profile(target="loihi2")


@pytest.fixture
def net_path(tmp_path):
    return compile_artifact(skip_concat_artifact(), LOIHI2, out=tmp_path / "m.net").net_path


def _first_weight(f: h5py.File, group: str) -> str:
    names: list[str] = []
    f[group].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and n.endswith("weight") else None)
    return f"{group}/{sorted(names)[0]}"


def test_the_recorded_profile_round_trips():
    back = profile_from_dict(profile_to_yaml_dict(LOIHI2), source="loihi2.yaml")
    assert back == LOIHI2


def test_intact_net_reads(net_path):
    g = read_net(net_path)
    assert g.meta["profile"]["name"] == "loihi2"


@pytest.mark.parametrize("group", ["lsnn", "layer"])
def test_an_altered_weight_is_refused(net_path, group):
    with h5py.File(net_path, "r+") as f:
        ds = f[_first_weight(f, group)]
        w = np.asarray(ds[()])
        w.flat[0] = 4000 if w.dtype.kind == "f" or np.iinfo(w.dtype).max >= 4000 else np.iinfo(w.dtype).max
        ds[...] = w
    with pytest.raises(ArtifactError, match=r"m\.net: its content differs from what was compiled"):
        read_net(net_path)


def test_an_altered_attribute_and_a_missing_digest_are_refused(net_path):
    with h5py.File(net_path, "r+") as f:
        f.attrs["created_by"] = "someone else"
    with pytest.raises(ArtifactError, match="content digest mismatch"):
        read_net(net_path)
    with h5py.File(net_path, "r+") as f:
        del f.attrs[DIGEST_ATTR]
    with pytest.raises(ArtifactError, match="no content digest"):
        read_net(net_path)


def test_a_net_that_breaks_its_recorded_profile_is_refused(net_path, tmp_path):
    g = read_net(net_path)
    strict = profile_to_yaml_dict(LOIHI2)
    strict["synapse"]["weight_bits"] = [1]               # no layer of this net fits 1-bit weights
    bad = tmp_path / "strict.net"
    write_net(g.replace(meta={**g.meta, "profile": strict}), bad)   # consistent digest, illegal content
    with pytest.raises(DesignRuleError, match="weight_bits"):
        read_net(bad)
    assert read_net(bad, verify_rules=False).meta["profile"]["synapse"]["weight_bits"] == [1]
