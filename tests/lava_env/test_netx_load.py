"""Inside the Lava environment: an unmodified lava-dl NetX `Network` builds from the compiler's
model.net with the right layers and parameters, and refuses what it cannot wire."""
import numpy as np
import pytest

from lsnn.compiler.backend.netx import write_net
from tests.factories.compiler import chain_artifact, compile_graph, skip_concat_artifact


@pytest.mark.lava
def test_netx_network_loads_chain(tmp_path):
    """An unmodified lava-dl NetX Network builds from our file with the right layers and parameters."""
    hdf5 = pytest.importorskip("lava.lib.dl.netx.hdf5")
    g = compile_graph(chain_artifact(seed=5))
    path = write_net(g, tmp_path / "m.net")
    net = hdf5.Network(net_config=str(path), input_message_bits=g.input.bits)
    assert len(net) == 3
    assert [type(layer).__name__ for layer in net.layers] == ["Conv", "Conv", "Dense"]
    assert [tuple(layer.shape) for layer in net.layers] == [(8, 8, 4), (4, 4, 6), (3,)]
    assert tuple(net.inp.shape) == (8, 8, 2) and tuple(net.out.shape) == (3,)
    for layer, name in zip(net.layers, ["stem", "conv1", "readout"]):
        p = g.population(name)
        assert int(layer.neuron.vth.init) == p.vth_mant
        assert int(layer.neuron.du.init) == p.du and int(layer.neuron.dv.init) == p.dv
        assert int(layer.neuron.bias_exp.init) == p.bias_exp
        bias = np.asarray(layer.neuron.bias_mant.init)
        want = p.bias_mant if bias.ndim == 1 else np.broadcast_to(p.bias_mant, bias.shape)
        assert np.array_equal(bias, want)
    for layer, name in zip(net.layers[:2], ["stem.conv", "conv1.conv"]):
        w = g.synapse(name).weight
        assert np.array_equal(layer.synapse.weight.init, w.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])


@pytest.mark.lava
def test_netx_refuses_non_chain(tmp_path):
    hdf5 = pytest.importorskip("lava.lib.dl.netx.hdf5")
    path = write_net(compile_graph(skip_concat_artifact()), tmp_path / "m.net")
    with pytest.raises(NotImplementedError, match="concat"):
        hdf5.Network(net_config=str(path))


@pytest.mark.lava
def test_netx_loads_identity_as_grouped_conv(tmp_path):
    """A chain step that is an identity (skip) group is a grouped 1x1 conv NetX builds as such."""
    hdf5 = pytest.importorskip("lava.lib.dl.netx.hdf5")
    from tests.factories.compiler import ArtifactBuilder

    b = ArtifactBuilder((2, 8, 8))
    b.population("stem", (4, 8, 8), scale=0.01 / 255)
    b.conv("stem.conv", "input", "stem", 4, bits=7)
    b.population("sub", (4, 4, 4), scale=1 / 64)
    b.identity("sub.skip", "stem", "sub", stride=2)
    b.population("readout", (3, 1, 1), kind="readout")
    b.dense("readout.fc", "sub", "readout", bits=7)
    g = compile_graph(b.build())
    path = write_net(g, tmp_path / "m.net")
    net = hdf5.Network(net_config=str(path), input_message_bits=8)
    assert [tuple(layer.shape) for layer in net.layers] == [(8, 8, 4), (4, 4, 4), (3,)]
    w = np.asarray(net.layers[1].synapse.weight.init)
    assert w.shape == (4, 1, 1, 1) and (w == 64).all()
    assert int(net.layers[1].synapse.groups.init) == 4
