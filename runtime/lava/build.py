"""Build the Lava process graph of a compiled net (fixed point, Loihi-2 semantics).

One process per piece of the chip, all Lava's own except the delay line and the probes:

- population -> `LIFReset` (bit-accurate `PyLifResetModelBitAcc`), shape (W, H, C), `du`, `dv`,
  `vth`, per-channel `bias_mant` broadcast over space, `bias_exp`, reset every T steps at offset
  (1 + depth) % T: each population's state is zeroed exactly when its wavefront of a new sample
  arrives (docs/SEMANTICS.md 4), so biases never integrate across samples and samples stream
  one per T steps.
- `conv` group -> `Conv` (true convolution: OIHW -> (O, KW, KH, I) flipped, WHC tensors).
  A group that feeds only a channel slice of its destination gets its weight zero-padded to the
  destination's channels (`dst_channel_offset`): one process per group, exact, and the InPort
  sums; the cost is simulated MACs on the zero rows (no effect on counted SynOps).
- `dense` group -> `Dense` on the flattened source (our C-major weights permuted to Lava's WHC
  order, rows placed at the channel offset); `identity` group -> `Sparse` diagonal (stride 2 =
  every second position; Lava's grouped Conv keeps `groups` in an int8, so C >= 128 breaks it).
  Lava's fixed-point Dense/Sparse clip mixed-sign weights to [-256, 255] and drop the LSB, so an
  integer weight w is written in signed base-256 digits, w = sum_k m_k 256^k with m_k in
  [-128, 127], one process per non-zero digit with weights 2 m_k and weight_exp 8k - 1: exact for
  any int32 weight (one process for |w| <= 127, two for the 8-bit readout).
- graded input -> `RingBuffer` source (int32 payload) into synapses with num_message_bits =
  input bits (binary input: 0); data columns are the samples, T steps each, then zeros.
- per-edge delay -> `ActivationDelay` between the synapse and the neuron, one per (destination,
  delay): an InPort sums all groups with that delay, like one dendritic delay slot.
- probes -> `SpikeRecorder` / `VarRecorder` (memmap files, see lava_probes).

Every process's model is given explicitly (`exception_proc_model_map` keyed by instance), so
Lava does not search (and execute) modules to find models. Imports Lava.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from lava.magma.core.process.process import AbstractProcess
from lava.proc.conv.models import PyConvModelFixed
from lava.proc.conv.process import Conv
from lava.proc.dense.models import PyDenseModelBitAcc
from lava.proc.dense.process import Dense
from lava.proc.io.source import PySendModelFixed, RingBuffer
from lava.proc.lif.models import PyLifResetModelBitAcc
from lava.proc.lif.process import LIFReset
from lava.proc.sparse.models import PySparseModelBitAcc
from lava.proc.sparse.process import Sparse
from lava.utils.weightutils import SignMode
from scipy.sparse import csr_matrix

from lsnn.compiler.ir import INPUT_NAME, Graph, SynapseGroup
from lsnn.runtime.lava.delay import ActivationDelay, PyActivationDelayModelFixed
from lsnn.runtime.lava.probes import PySpikeRecorderModel, PyVarRecorderModel, SpikeRecorder, VarRecorder
from lsnn.runtime.netgraph import (
    Timing,
    check_input_int,
    check_runnable,
    effective_weight,
    input_is_graded,
    runs_sparse,
)


def whc(shape_chw: tuple[int, int, int]) -> tuple[int, int, int]:
    c, h, w = shape_chw
    return (w, h, c)


def lava_conv_weight(w_oihw: np.ndarray) -> np.ndarray:
    """OIHW cross-correlation weights -> Lava Conv's (O, KW, KH, I) true-convolution kernel."""
    return np.ascontiguousarray(w_oihw.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])


def base256_digits(w: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """w (int) = sum_k m_k * 256^k with m_k in [-128, 127]: [(k, m_k)] for the non-zero digits."""
    r = np.asarray(w, dtype=np.int64)
    out = []
    k = 0
    while np.any(r):
        m = ((r + 128) % 256) - 128
        if np.any(m):
            out.append((k, m))
        r = (r - m) // 256
        k += 1
    return out


def identity_matrix(src_chw, dst_chw, stride: int, offset: int, value: np.ndarray | int) -> csr_matrix:
    """Sparse (n_dst x n_src) in Lava's WHC flattening: dst (x, y, offset + c) <- src (s x, s y, c)."""
    cs, hs, ws = src_chw
    cd, hd, wd = dst_chw
    x, y, c = np.meshgrid(np.arange(wd), np.arange(hd), np.arange(cs), indexing="ij")
    dst = (x * hd * cd + y * cd + (offset + c)).reshape(-1)
    src = ((x * stride) * hs * cs + (y * stride) * cs + c).reshape(-1)
    data = np.broadcast_to(np.asarray(value, dtype=np.int64), dst.shape).astype(np.int32)
    return csr_matrix((data, (dst, src)), shape=(cd * hd * wd, cs * hs * ws))


def dense_matrix(w: np.ndarray, src_chw, dst_channels: int, offset: int) -> np.ndarray:
    """(out, C*H*W C-major) -> (dst_channels, W*H*C Lava order), rows at the channel offset."""
    o = w.shape[0]
    c, h, ww = src_chw
    lw = w.reshape(o, c, h, ww).transpose(0, 3, 2, 1).reshape(o, -1)
    full = np.zeros((dst_channels, lw.shape[1]), dtype=np.int64)
    full[offset:offset + o] = lw
    return full


@dataclass
class LavaNetwork:
    """The processes of one run and where their probes write."""

    graph: Graph
    timing: Timing
    num_samples: int
    num_steps: int
    lif: dict[str, AbstractProcess]
    synapses: dict[str, list[AbstractProcess]]
    delays: dict[tuple[str, int], AbstractProcess]
    source: AbstractProcess
    spike_files: dict[str, str] = field(default_factory=dict)
    v_file: Optional[str] = None
    v_rows: int = 0
    v_every_step: bool = False
    model_map: dict[Any, Any] = field(default_factory=dict)

    @property
    def root(self) -> AbstractProcess:
        return self.lif[self.graph.populations[0].name]

    @property
    def process_count(self) -> int:
        return len(self.model_map)


def _new_file(path: str, dtype, shape) -> str:
    mm = np.memmap(path, dtype=dtype, mode="w+", shape=shape)
    mm.flush()
    del mm
    return path


class _Builder:
    """The processes of one network as they are made, each with its model; the delay lines are
    shared per (destination, delay)."""

    def __init__(self, graph: Graph, tm: Timing, source: AbstractProcess, msg_bits: int) -> None:
        self.graph, self.tm, self.source, self.msg_bits = graph, tm, source, msg_bits
        self.models: dict[Any, Any] = {source: PySendModelFixed}
        self.lif: dict[str, AbstractProcess] = {}
        self.delays: dict[tuple[str, int], AbstractProcess] = {}

    def add(self, proc: AbstractProcess, model: Any) -> AbstractProcess:
        self.models[proc] = model
        return proc

    def populations(self) -> None:
        """One LIFReset per population, reset when its wavefront of a new sample arrives."""
        T = self.graph.T
        for p in self.graph.populations:
            shape = whc(p.shape)
            bias = np.broadcast_to(p.bias_mant.astype(np.int64).reshape(1, 1, -1), shape).copy()
            self.lif[p.name] = self.add(
                LIFReset(shape=shape, du=int(p.du), dv=int(p.dv), vth=int(p.vth_mant), bias_mant=bias,
                         bias_exp=int(p.bias_exp), reset_interval=T, reset_offset=self.tm.reset_offset(p.name),
                         name=f"lif:{p.name}"), PyLifResetModelBitAcc)

    def target(self, s: SynapseGroup) -> Any:
        """The InPort group s delivers to: its destination's, or the delay line in front of it."""
        d = self.tm.delay[s.name]
        if d == 0:
            return self.lif[s.dst].a_in
        key = (s.dst, d)
        if key not in self.delays:
            proc = self.add(ActivationDelay(shape=whc(self.graph.shape_of(s.dst)), delay=d, name=f"delay:{s.dst}:{d}"),
                            PyActivationDelayModelFixed)
            proc.a_out.connect(self.lif[s.dst].a_in)
            self.delays[key] = proc
        return self.delays[key].a_in

    def _wire(self, s: SynapseGroup, proc: AbstractProcess, flat: bool) -> AbstractProcess:
        """Connect proc between s's source (flattened for Dense / Sparse) and its target."""
        port = self.source.s_out if s.src == INPUT_NAME else self.lif[s.src].s_out
        (port.flatten() if flat else port).connect(proc.s_in)
        out = proc.a_out.reshape(whc(self.graph.shape_of(s.dst))) if flat else proc.a_out
        out.connect(self.target(s))
        return proc

    def synapse(self, s: SynapseGroup) -> list[AbstractProcess]:
        """The processes of synapse group s (several for weights beyond one base-256 digit)."""
        src_shape, dst_shape = self.graph.shape_of(s.src), self.graph.shape_of(s.dst)
        bits = self.msg_bits if s.src == INPUT_NAME else 0
        w = effective_weight(s)
        digits = dict(num_message_bits=bits, num_weight_bits=8, sign_mode=SignMode.MIXED)
        if s.kind == "conv":
            full = np.zeros((dst_shape[0],) + w.shape[1:], dtype=np.int64)
            full[s.dst_channel_offset:s.dst_channel_offset + w.shape[0]] = w
            proc = Conv(weight=lava_conv_weight(full).astype(np.int32), input_shape=whc(src_shape),
                        padding=s.padding, stride=s.stride, num_message_bits=bits, name=f"conv:{s.name}")
            return [self._wire(s, self.add(proc, PyConvModelFixed), False)]
        procs = []
        if s.kind == "dense":
            mat = dense_matrix(w, src_shape, dst_shape[0], s.dst_channel_offset)
            sparse = runs_sparse(mat)                    # e.g. a readout in parts
            for k, m in base256_digits(mat):
                if sparse:
                    proc = self.add(Sparse(weights=csr_matrix((2 * m).astype(np.int32)), weight_exp=8 * k - 1,
                                           name=f"sparse:{s.name}:{k}", **digits), PySparseModelBitAcc)
                else:
                    proc = self.add(Dense(weights=(2 * m).astype(np.int32), weight_exp=8 * k - 1,
                                          name=f"dense:{s.name}:{k}", **digits), PyDenseModelBitAcc)
                procs.append(self._wire(s, proc, True))
            return procs
        for k, m in base256_digits(np.asarray(w)):      # identity: one weight for every channel
            mat = identity_matrix(src_shape, dst_shape, s.stride, s.dst_channel_offset, 2 * int(m))
            proc = self.add(Sparse(weights=mat, weight_exp=8 * k - 1, name=f"sparse:{s.name}:{k}", **digits),
                            PySparseModelBitAcc)
            procs.append(self._wire(s, proc, True))
        return procs


def _input_source(graph: Graph, x_int: np.ndarray, steps: int) -> RingBuffer:
    """The input ring buffer: column s-1 is sent at step s; each sample for T steps, then zeros."""
    T = graph.T
    data = np.zeros(whc(graph.input.shape) + (steps,), dtype=np.int32)
    for k in range(x_int.shape[0]):
        data[..., k * T:(k + 1) * T] = x_int[k].transpose(2, 1, 0)[..., None]
    if not input_is_graded(graph):
        data = (data != 0).astype(np.int32)
    return RingBuffer(data=data)


def _add_probes(net: LavaNetwork, workdir: str, record_spikes: bool, v_every_step: bool) -> None:
    """Spike recorders on every population (if asked) and the readout's v recorder."""
    graph, tm, steps, models = net.graph, net.timing, net.num_steps, net.model_map
    if record_spikes:
        for p in graph.populations:
            path = _new_file(os.path.join(workdir, f"spikes_{len(net.spike_files)}.u8"), np.uint8,
                             (steps, p.size))
            rec = SpikeRecorder(shape=whc(p.shape), num_steps=steps, path=path, name=f"rec:{p.name}")
            net.lif[p.name].s_out.connect(rec.a_in)
            models[rec] = PySpikeRecorderModel
            net.spike_files[p.name] = path
    ro = graph.population(graph.readout)
    if v_every_step:
        first, interval, count = 1, 1, steps
    else:
        first, interval, count = graph.T + tm.latency, graph.T, net.num_samples
    if count > 0:
        path = _new_file(os.path.join(workdir, "readout_v.i32"), np.int32, (count, ro.size))
        vrec = VarRecorder(var=net.lif[ro.name].v, path=path, first=first, interval=interval, count=count,
                           name="rec:readout_v")
        models[vrec] = PyVarRecorderModel
        net.v_file, net.v_rows, net.v_every_step = path, count, v_every_step


def build_network(graph: Graph, x_int: np.ndarray, workdir: str, *, record_spikes: bool = True,
                  v_every_step: bool = False) -> LavaNetwork:
    """Processes for streaming the encoded samples x_int [N, C, H, W] through `graph`.

    Runs `N*T + max depth` steps. Spikes of every population are recorded if `record_spikes`;
    the readout's v at the end of every window (or after every step with `v_every_step`).
    """
    tm = check_runnable(graph)
    x_int = check_input_int(graph, x_int)
    n = x_int.shape[0]
    steps = tm.num_steps(n)
    source = _input_source(graph, x_int, steps)
    b = _Builder(graph, tm, source, graph.input.bits if input_is_graded(graph) else 0)
    b.populations()
    synapses = {s.name: b.synapse(s) for s in graph.synapses}
    net = LavaNetwork(graph=graph, timing=tm, num_samples=n, num_steps=steps, lif=b.lif, synapses=synapses,
                      delays=b.delays, source=source, model_map=b.models)
    _add_probes(net, workdir, record_spikes, v_every_step)
    return net
