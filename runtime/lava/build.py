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


def build_network(graph: Graph, x_int: np.ndarray, workdir: str, *, record_spikes: bool = True,
                  v_every_step: bool = False) -> LavaNetwork:
    """Processes for streaming the encoded samples x_int [N, C, H, W] through `graph`.

    Runs `N*T + max depth` steps. Spikes of every population are recorded if `record_spikes`;
    the readout's v at the end of every window (or after every step with `v_every_step`).
    """
    tm = check_runnable(graph)
    x_int = check_input_int(graph, x_int)
    n = x_int.shape[0]
    T = graph.T
    steps = tm.num_steps(n)
    models: dict[Any, Any] = {}
    graded = input_is_graded(graph)

    # input ring buffer: column s-1 is sent at step s
    data = np.zeros(whc(graph.input.shape) + (steps,), dtype=np.int32)
    for k in range(n):
        data[..., k * T:(k + 1) * T] = x_int[k].transpose(2, 1, 0)[..., None]
    if not graded:
        data = (data != 0).astype(np.int32)
    source = RingBuffer(data=data)
    models[source] = PySendModelFixed
    msg_bits = graph.input.bits if graded else 0

    lif: dict[str, AbstractProcess] = {}
    for p in graph.populations:
        shape = whc(p.shape)
        bias = np.broadcast_to(p.bias_mant.astype(np.int64).reshape(1, 1, -1), shape).copy()
        proc = LIFReset(shape=shape, du=int(p.du), dv=int(p.dv), vth=int(p.vth_mant), bias_mant=bias,
                        bias_exp=int(p.bias_exp), reset_interval=T, reset_offset=tm.reset_offset(p.name),
                        name=f"lif:{p.name}")
        lif[p.name] = proc
        models[proc] = PyLifResetModelBitAcc

    delays: dict[tuple[str, int], AbstractProcess] = {}

    def target(s: SynapseGroup):
        d = tm.delay[s.name]
        if d == 0:
            return lif[s.dst].a_in
        key = (s.dst, d)
        if key not in delays:
            proc = ActivationDelay(shape=whc(graph.shape_of(s.dst)), delay=d, name=f"delay:{s.dst}:{d}")
            proc.a_out.connect(lif[s.dst].a_in)
            delays[key] = proc
            models[proc] = PyActivationDelayModelFixed
        return delays[key].a_in

    def source_port(s: SynapseGroup, flat: bool):
        port = source.s_out if s.src == INPUT_NAME else lif[s.src].s_out
        return port.flatten() if flat else port

    synapses: dict[str, list[AbstractProcess]] = {}
    for s in graph.synapses:
        src_shape = graph.shape_of(s.src)
        dst_shape = graph.shape_of(s.dst)
        bits = msg_bits if s.src == INPUT_NAME else 0
        w = effective_weight(s)
        procs: list[AbstractProcess] = []
        if s.kind == "conv":
            o = w.shape[0]
            full = np.zeros((dst_shape[0],) + w.shape[1:], dtype=np.int64)
            full[s.dst_channel_offset:s.dst_channel_offset + o] = w
            proc = Conv(weight=lava_conv_weight(full).astype(np.int32), input_shape=whc(src_shape),
                        padding=s.padding, stride=s.stride, num_message_bits=bits, name=f"conv:{s.name}")
            source_port(s, False).connect(proc.s_in)
            proc.a_out.connect(target(s))
            models[proc] = PyConvModelFixed
            procs.append(proc)
        elif s.kind == "dense":
            mat = dense_matrix(w, src_shape, dst_shape[0], s.dst_channel_offset)
            sparse = runs_sparse(mat)                    # e.g. a readout in parts
            for k, m in base256_digits(mat):
                if sparse:
                    proc = Sparse(weights=csr_matrix((2 * m).astype(np.int32)), num_message_bits=bits,
                                  weight_exp=8 * k - 1, num_weight_bits=8, sign_mode=SignMode.MIXED,
                                  name=f"sparse:{s.name}:{k}")
                    models[proc] = PySparseModelBitAcc
                else:
                    proc = Dense(weights=(2 * m).astype(np.int32), num_message_bits=bits, weight_exp=8 * k - 1,
                                 num_weight_bits=8, sign_mode=SignMode.MIXED, name=f"dense:{s.name}:{k}")
                    models[proc] = PyDenseModelBitAcc
                source_port(s, True).connect(proc.s_in)
                proc.a_out.reshape(whc(dst_shape)).connect(target(s))
                procs.append(proc)
        else:  # identity: one weight for every channel
            for k, m in base256_digits(np.asarray(w)):
                mat = identity_matrix(src_shape, dst_shape, s.stride, s.dst_channel_offset, 2 * int(m))
                proc = Sparse(weights=mat, num_message_bits=bits, weight_exp=8 * k - 1, num_weight_bits=8,
                              sign_mode=SignMode.MIXED, name=f"sparse:{s.name}:{k}")
                source_port(s, True).connect(proc.s_in)
                proc.a_out.reshape(whc(dst_shape)).connect(target(s))
                models[proc] = PySparseModelBitAcc
                procs.append(proc)
        synapses[s.name] = procs

    net = LavaNetwork(graph=graph, timing=tm, num_samples=n, num_steps=steps, lif=lif, synapses=synapses,
                      delays=delays, source=source, model_map=models)
    if record_spikes:
        for p in graph.populations:
            path = _new_file(os.path.join(workdir, f"spikes_{len(net.spike_files)}.u8"), np.uint8,
                             (steps, p.size))
            rec = SpikeRecorder(shape=whc(p.shape), num_steps=steps, path=path, name=f"rec:{p.name}")
            lif[p.name].s_out.connect(rec.a_in)
            models[rec] = PySpikeRecorderModel
            net.spike_files[p.name] = path
    ro = graph.population(graph.readout)
    if v_every_step:
        first, interval, count = 1, 1, steps
    else:
        first, interval, count = T + tm.latency, T, n
    if count > 0:
        path = _new_file(os.path.join(workdir, "readout_v.i32"), np.int32, (count, ro.size))
        vrec = VarRecorder(var=lif[ro.name].v, path=path, first=first, interval=interval, count=count,
                           name="rec:readout_v")
        models[vrec] = PyVarRecorderModel
        net.v_file, net.v_rows, net.v_every_step = path, count, v_every_step
    return net
