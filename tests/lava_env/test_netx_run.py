"""A chain-shaped model.net written by the compiler's HDF5 writer loads into an unmodified
lava-dl NetX `Network` and gives the same spikes as our runtime: every layer, every step, and the
readout's potential (NetX's own reset offsets follow the layer index, which is the depth here)."""
import os

import numpy as np
import pytest

from lsnn.compiler.backend.netx import is_netx_chain, read_net, write_net
from lsnn.runtime.emulator import Emulator, PipelineTrace, first_difference
from tests.factories.runtime import chain_graph, random_input

pytestmark = pytest.mark.lava


@pytest.mark.parametrize("T,bits_in", [(3, 8), (2, 1)])
def test_netx_network_matches_runtime(tmp_path, T, bits_in):
    from lsnn.runtime.lava.run import import_lava

    import_lava()
    from lava.lib.dl.netx import hdf5
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import PySendModelFixed, RingBuffer

    from lsnn.runtime.lava.probes import PySpikeRecorderModel, PyVarRecorderModel, SpikeRecorder, VarRecorder

    # NetX chooses its own Dense weight format (optimize_weight_bits clips mixed weights to
    # [-256, 254]): keep the readout's integers within 4 bits so its choice is exact
    g = chain_graph(T=T, bits_in=bits_in, balanced=True, dense_bits=4)
    path = str(tmp_path / "model.net")
    write_net(g, path)
    g = read_net(path)
    assert is_netx_chain(g)
    em = Emulator(g)
    x = random_input(g, 3, seed=2)
    n, steps = len(x), em.timing.num_steps(len(x))

    net = hdf5.Network(net_config=path, input_message_bits=bits_in if bits_in > 1 else 0,
                       reset_interval=T, reset_offset=1)
    assert len(net.layers) == len(g.populations)
    data = np.zeros((g.input.shape[2], g.input.shape[1], g.input.shape[0], steps), np.int32)
    for k in range(n):
        data[..., k * T:(k + 1) * T] = x[k].transpose(2, 1, 0)[..., None]
    src = RingBuffer(data=data)
    src.s_out.connect(net.inp)
    models = {src: PySendModelFixed}
    files = {}
    for p, block in zip(g.populations, net.layers):
        f = os.path.join(tmp_path, f"{p.name}.u8")
        np.memmap(f, np.uint8, "w+", shape=(steps, p.size)).flush()
        rec = SpikeRecorder(shape=block.out.shape, num_steps=steps, path=f)
        block.out.connect(rec.a_in)
        models[rec] = PySpikeRecorderModel
        files[p.name] = f
    k_out = g.population(g.readout).size
    vf = os.path.join(tmp_path, "v.i32")
    np.memmap(vf, np.int32, "w+", shape=(steps, k_out)).flush()
    vrec = VarRecorder(var=net.layers[-1].neuron.v, path=vf, first=1, interval=1, count=steps)
    models[vrec] = PyVarRecorderModel
    try:
        net.run(condition=RunSteps(num_steps=steps),
                run_cfg=Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models))
    finally:
        net.stop()
    spikes = {}
    for p in g.populations:
        c, h, w = p.shape
        mm = np.memmap(files[p.name], np.uint8, "r", shape=(steps, p.size))
        spikes[p.name] = np.array(mm).reshape(steps, w, h, c).transpose(0, 3, 2, 1)
    v = np.array(np.memmap(vf, np.int32, "r", shape=(steps, k_out)))
    netx = PipelineTrace(spikes=spikes, readout_v=v, num_steps=steps, num_samples=n, timing=em.timing)
    ref = em.to_pipeline(x)
    assert first_difference(ref, netx) is None
    assert sum(int(s.sum()) for s in spikes.values()) > 0
    assert np.array_equal(netx.window_v(), em.run(x).readout_v)
