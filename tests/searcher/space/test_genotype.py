"""Genotype value type: JSON round trip and validation errors."""
import json

import pytest

from lsnn.errors import ConfigError
from lsnn.searcher.space.genotype import CellGene, Edge, Genotype


def _g():
    cell = CellGene(reduction=False, bits=2, nodes=((Edge("conv3x3", 0), Edge("skip", 1)),
                                                   (Edge("conv3x3", 2), Edge("conv3x3", 0)),
                                                   (Edge("skip", 3), Edge("conv3x3", 1)),
                                                   (Edge("conv3x3", 4), Edge("skip", 2))))
    red = CellGene(reduction=True, bits=4, nodes=cell.nodes)
    return Genotype(cells=(cell, red), T=3, C=8, prune_rate=0.8, num_classes=10,
                    input_shape=(1, 8, 8), aux_cell=None, meta={"seed": 1})


def test_round_trip_dict_and_file(tmp_path):
    g = _g()
    assert Genotype.from_dict(g.to_dict()) == g
    g.save(tmp_path / "genotype.json")
    assert Genotype.load(tmp_path / "genotype.json") == g
    assert g.reductions == (1,)
    assert json.loads((tmp_path / "genotype.json").read_text())["cells"][1]["bits"] == 4


def test_unknown_op_is_named():
    with pytest.raises(ConfigError, match="unknown op 'sep_conv' \\(supported: conv3x3, skip\\)"):
        Edge("sep_conv", 0)


def test_edge_from_later_node_rejected():
    with pytest.raises(ConfigError, match="node 0: edge from input 2"):
        CellGene(reduction=False, bits=1, nodes=((Edge("skip", 2),),))


def test_bad_file_errors(tmp_path):
    p = tmp_path / "g.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="g.json: not valid JSON"):
        Genotype.load(p)
    d = _g().to_dict()
    d["version"] = 99
    p.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="genotype version 99"):
        Genotype.load(p)
    del d["cells"]
    d["version"] = 1
    p.write_text(json.dumps(d))
    with pytest.raises(ConfigError, match="malformed genotype \\(KeyError"):
        Genotype.load(p)
    with pytest.raises(ConfigError, match="no such genotype file"):
        Genotype.load(tmp_path / "missing.json")
