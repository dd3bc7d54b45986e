"""Integer-stage compiler Graphs for the runtime tests, built directly at the IR level.

- Hand-built shapes: `chain_graph`, `skip_graph`, `concat_graph`, `reduction_graph`.
- `random_graph(seed)`: random depth, skips (identity, stride 1 or 2), concat consumers (several
  groups into channel slices of one population), conv kernels 1x1/3x3 with stride 1/2, masks of
  random sparsity, weight bits 1/2/4/8 (odd EdMIPS integers), identity weights up to a few
  hundred (more than one Lava synapse word), graded or binary input of random bits, biases,
  general du/dv, T in 1..5, depths and delays left to the runtime or set explicitly.
- `random_input(graph, n, seed)`: encoded input x_int [n, C, H, W].

Thresholds are calibrated so every population fires at a moderate rate (a test that compares
all-silent layers proves nothing): `calibrate` runs the emulator population by population and
sets vth to an upper quantile of the per-step input a_t + bias.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from lsnn.compiler.ir import V_MAX, Graph, InputNode, Population, SynapseGroup, depths


def odd_weights(rng: np.random.Generator, shape, bits: int, keep: float = 1.0) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """EdMIPS-style integers: odd, |w| <= 2^bits - 1, mixed sign; a random mask keeps `keep`."""
    k = rng.integers(0, 2 ** bits, size=shape)                 # level 0 .. 2^b - 1
    w = (2 * k - (2 ** bits - 1)).astype(np.int32)             # odd in [-(2^b - 1), 2^b - 1]
    if keep >= 1.0:
        return w, None
    mask = rng.random(shape) < keep
    rows = mask.reshape(mask.shape[0], -1)
    for o in np.flatnonzero(~rows.any(axis=1)):        # keep at least one weight per output
        rows[o, rng.integers(0, rows.shape[1])] = True
    return np.where(mask, w, 0).astype(np.int32), mask


def lif(name: str, shape, bias=None, vth: int = 8, du: int = 4095, dv: int = 3277, scale: float = 1.0,
        kind: str = "lif") -> Population:
    c = shape[0]
    b = np.zeros(c, np.int32) if bias is None else np.asarray(bias, np.int32)
    return Population(name=name, kind=kind, shape=tuple(shape), scale=scale, bias_mant=b, vth_mant=int(vth),
                      du=du, dv=dv)


def readout(name: str, k: int, bias=None) -> Population:
    return lif(name, (k, 1, 1), bias=bias, vth=V_MAX, dv=0, kind="readout")


def conv(name: str, src: str, dst: str, w: np.ndarray, mask=None, stride: int = 1, padding: Optional[int] = None,
         offset: int = 0, bits: int = 4) -> SynapseGroup:
    pad = w.shape[2] // 2 if padding is None else padding
    return SynapseGroup(name=name, kind="conv", src=src, dst=dst, weight=np.asarray(w, np.int32), mask=mask,
                        stride=stride, padding=pad, dst_channel_offset=offset, bits=bits, weight_bits=bits + 1)


def identity(name: str, src: str, dst: str, n: int, stride: int = 1, offset: int = 0) -> SynapseGroup:
    return SynapseGroup(name=name, kind="identity", src=src, dst=dst, weight=np.asarray(n, np.int32), stride=stride,
                        dst_channel_offset=offset, weight_bits=max(1, int(abs(n)).bit_length()),
                        sign_mode="excitatory" if n >= 0 else "inhibitory")


def dense(name: str, src: str, dst: str, w: np.ndarray, mask=None, offset: int = 0, bits: int = 8) -> SynapseGroup:
    return SynapseGroup(name=name, kind="dense", src=src, dst=dst, weight=np.asarray(w, np.int32), mask=mask,
                        dst_channel_offset=offset, bits=bits, weight_bits=bits + 1)


def make_graph(inp: InputNode, pops, syns, T: int, balanced: bool = False) -> Graph:
    """An integer-stage Graph; with `balanced` the depths/delays/latency are set explicitly."""
    ro = [p.name for p in pops if p.kind == "readout"][0]
    g = Graph(input=inp, populations=tuple(pops), synapses=tuple(syns), T=T, readout=ro, stage="integer")
    if not balanced:
        return g
    d = depths(g)
    pops = [dataclasses.replace(p, depth=d[p.name]) for p in g.populations]
    syns = [dataclasses.replace(s, delay=d[s.dst] - 1 - d[s.src]) for s in g.synapses]
    return Graph(input=inp, populations=tuple(pops), synapses=tuple(syns), T=T, readout=ro, stage="integer",
                 latency=d[ro])


def random_input(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hi = (1 << graph.input.bits) - 1
    x = rng.integers(0, hi + 1, size=(n,) + graph.input.shape)
    # some exact zeros and saturated values (graded events skip zeros)
    x[rng.random(x.shape) < 0.2] = 0
    return x.astype(np.int32)


# ----------------------------------------------------------------------------------------------
# calibration of thresholds


def calibrate(graph: Graph, x_int: np.ndarray, seed: int = 0, rate: tuple[float, float] = (0.1, 0.4)) -> Graph:
    """Set each LIF population's vth_mant so it fires at a moderate rate on x_int.

    Population by population (topological order): run the emulator on the graph so far, take
    the distribution of a_t + bias (integer input per step) of that population and put vth at a
    random quantile of it. Exactness tests do not depend on this; it only avoids silent layers.
    """
    from lsnn.runtime.emulator import Emulator
    from lsnn.runtime.emulator.synapse_ops import SynapseOp

    rng = np.random.default_rng(seed)
    pops = list(graph.populations)
    for i, p in enumerate(pops):
        if p.kind != "lif":
            continue
        g = graph.with_populations(pops)
        em = Emulator(g)
        res = em.run(x_int, record_spikes=True)
        a = np.zeros((x_int.shape[0], graph.T) + p.shape, dtype=np.int64)
        for s in g.incoming(p.name):
            op = SynapseOp(s, g)
            if s.src == "input":
                x = x_int.transpose(0, 2, 3, 1)
                if not (g.input.encoding == "graded" and g.input.bits > 1):
                    x = (x != 0).astype(np.uint8)
                y = op(np.ascontiguousarray(x))[:, None]
            else:
                sp = res.spikes[s.src]                                  # [N, T, C, H, W]
                y = op(np.ascontiguousarray(sp.transpose(0, 1, 3, 4, 2)).reshape((-1,) + sp.shape[3:] + sp.shape[2:3]))
                y = y.reshape((x_int.shape[0], graph.T) + y.shape[1:])
            a[..., s.dst_channel_offset:s.dst_channel_offset + op.channels, :, :] += y.transpose(0, 1, 4, 2, 3)
        bias = p.bias_mant.astype(np.int64)
        drive = (a + bias.reshape(1, 1, -1, 1, 1)).reshape(-1)
        q = 1.0 - rng.uniform(*rate)
        level = int(np.quantile(drive, q)) if drive.size else 0
        if level < 1:                       # would stay silent: lift the bias so it fires a bit
            bias = bias + (1 - level) + 1
            level = 1
        vth = int(min(level - 1, 2 ** 17 - 1))  # spike iff drive > vth; Lava's 17-bit vth mantissa
        pops[i] = dataclasses.replace(p, vth_mant=vth, bias_mant=bias.astype(np.int32))
    return graph.with_populations(pops)


# ----------------------------------------------------------------------------------------------
# hand-built graphs


def _input(shape, bits: int = 8) -> InputNode:
    return InputNode(shape=shape, encoding="graded" if bits > 1 else "binary", bits=bits)


def chain_graph(T: int = 3, seed: int = 0, bits_in: int = 8, C: int = 3, HW: int = 5, K: int = 4,
                bias: bool = True, balanced: bool = False, dense_bits: int = 8) -> Graph:
    """input -> conv3x3 -> A -> conv3x3 -> B -> dense -> readout."""
    rng = np.random.default_rng(seed)
    c0 = 2
    w1, _ = odd_weights(rng, (C, c0, 3, 3), 4)
    w2, m2 = odd_weights(rng, (C, C, 3, 3), 2, keep=0.6)
    wd, _ = odd_weights(rng, (K, C * HW * HW), dense_bits)
    pops = [lif("A", (C, HW, HW), bias=rng.integers(-20, 20, C) if bias else None),
            lif("B", (C, HW, HW), bias=rng.integers(-3, 4, C) if bias else None),
            readout("out", K, bias=rng.integers(-30, 30, K) if bias else None)]
    syns = [conv("in.A", "input", "A", w1), conv("A.B", "A", "B", w2, m2, bits=2), dense("B.out", "B", "out", wd, bits=dense_bits)]
    g = make_graph(_input((c0, HW, HW), bits_in), pops, syns, T, balanced)
    return calibrate(g, random_input(g, 6, seed), seed)


def skip_graph(T: int = 3, seed: int = 1, balanced: bool = False) -> Graph:
    """A -> B -> C with an identity skip A -> C (delay 1 on the skip edge)."""
    rng = np.random.default_rng(seed)
    C, HW, K = 3, 5, 3
    pops = [lif("A", (C, HW, HW), bias=rng.integers(-5, 5, C)), lif("B", (C, HW, HW)),
            lif("C", (C, HW, HW), bias=rng.integers(-3, 3, C)), readout("out", K)]
    syns = [conv("in.A", "input", "A", odd_weights(rng, (C, 1, 3, 3), 4)[0]),
            conv("A.B", "A", "B", odd_weights(rng, (C, C, 3, 3), 2)[0], bits=2),
            conv("B.C", "B", "C", odd_weights(rng, (C, C, 1, 1), 4)[0]),
            identity("A.C", "A", "C", 5),
            dense("C.out", "C", "out", odd_weights(rng, (K, C * HW * HW), 8)[0])]
    g = make_graph(_input((1, HW, HW)), pops, syns, T, balanced)
    return calibrate(g, random_input(g, 6, seed), seed)


def concat_graph(T: int = 2, seed: int = 2, balanced: bool = False) -> Graph:
    """Two nodes N0, N1 (a 'cell'), consumed as a concat by D: one conv group per node taking
    that node's input-channel slice; E receives N0 and N1 in separate output-channel slices
    (dst_channel_offset) plus a conv over the full width."""
    rng = np.random.default_rng(seed)
    HW, K = 4, 3
    pops = [lif("S", (2, HW, HW)), lif("N0", (2, HW, HW)), lif("N1", (3, HW, HW), bias=rng.integers(-4, 4, 3)),
            lif("D", (4, HW, HW)), lif("E", (5, HW, HW), bias=rng.integers(-4, 4, 5)), readout("out", K)]
    syns = [conv("in.S", "input", "S", odd_weights(rng, (2, 2, 3, 3), 4)[0]),
            conv("S.N0", "S", "N0", odd_weights(rng, (2, 2, 3, 3), 2)[0], bits=2),
            conv("S.N1", "S", "N1", odd_weights(rng, (3, 2, 1, 1), 4)[0]),
            identity("N0.N1", "N0", "N1", 3, offset=1),
            conv("N0.D", "N0", "D", odd_weights(rng, (4, 2, 3, 3), 1)[0], bits=1),
            conv("N1.D", "N1", "D", *odd_weights(rng, (4, 3, 3, 3), 4, keep=0.5)),
            identity("N0.E", "N0", "E", 9, offset=0),
            conv("N1.E", "N1", "E", odd_weights(rng, (3, 3, 3, 3), 2)[0], offset=2, bits=2),
            conv("D.E", "D", "E", odd_weights(rng, (5, 4, 1, 1), 4)[0]),
            dense("E.out", "E", "out", odd_weights(rng, (K, 5 * HW * HW), 4)[0], bits=4),
            dense("D.out", "D", "out", odd_weights(rng, (2, 4 * HW * HW), 4)[0], offset=1, bits=4)]
    g = make_graph(_input((2, HW, HW), 6), pops, syns, T, balanced)
    return calibrate(g, random_input(g, 6, seed), seed)


def reduction_graph(T: int = 3, seed: int = 3, HW: int = 7, balanced: bool = False) -> Graph:
    """Stride-2 edges: conv3x3/s2 and conv1x1/s2 into R, and an identity stride-2 skip."""
    rng = np.random.default_rng(seed)
    h2 = (HW - 1) // 2 + 1
    K = 3
    pops = [lif("A", (2, HW, HW), bias=rng.integers(-5, 5, 2)), lif("B", (2, HW, HW)),
            lif("R", (2, h2, h2)), lif("Q", (4, h2, h2)), readout("out", K)]
    syns = [conv("in.A", "input", "A", odd_weights(rng, (2, 3, 3, 3), 4)[0]),
            conv("A.B", "A", "B", odd_weights(rng, (2, 2, 3, 3), 2)[0], bits=2),
            conv("B.R", "B", "R", odd_weights(rng, (2, 2, 3, 3), 4)[0], stride=2, padding=1),
            conv("A.R", "A", "R", odd_weights(rng, (2, 2, 1, 1), 4)[0], stride=2, padding=0),
            identity("A.Q", "A", "Q", 4, stride=2, offset=2),
            conv("R.Q", "R", "Q", odd_weights(rng, (4, 2, 3, 3), 2)[0], bits=2),
            dense("Q.out", "Q", "out", odd_weights(rng, (K, 4 * h2 * h2), 8)[0])]
    g = make_graph(_input((3, HW, HW), 8), pops, syns, T, balanced)
    return calibrate(g, random_input(g, 6, seed), seed)


# ----------------------------------------------------------------------------------------------
# random graphs


def random_graph(seed: int, max_pops: int = 6, max_hw: int = 7, max_c: int = 5, T: Optional[int] = None,
                 inp: Optional[InputNode] = None) -> Graph:
    """A random integer-stage graph (see module doc); calibrated to fire. `T` and `inp` fix the
    number of steps and the input node (random otherwise)."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 6)) if T is None else T
    if inp is None:
        c0 = int(rng.integers(1, 4))
        hw0 = int(rng.integers(3, max_hw + 1))
        inp = _input((c0, hw0, hw0), int(rng.choice([1, 2, 4, 8])))
    c0, hw0, _ = inp.shape
    pops: list[Population] = []
    syns: list[SynapseGroup] = []
    shapes = {"input": (c0, hw0, hw0)}
    general = rng.random() < 0.3                     # general du / dv somewhere

    def new_lif(name: str, shape) -> Population:
        du = int(rng.integers(0, 4096)) if general and rng.random() < 0.5 else 4095
        dv = int(rng.integers(0, 4096)) if general and rng.random() < 0.5 else 3277
        bias = rng.integers(-8, 9, shape[0]) if rng.random() < 0.6 else None
        return lif(name, shape, bias=bias, du=du, dv=dv)

    def conv_edge(name: str, src: str, dst: str, out_c: int, offset: int, dst_hw: int) -> SynapseGroup:
        cs, hs, _ = shapes[src]
        bits = int(rng.choice([1, 2, 4, 8]))
        keep = float(rng.choice([1.0, 0.7, 0.4]))
        k = int(rng.choice([1, 3]))
        stride = 1 if dst_hw == hs else 2
        pad = k // 2
        w, m = odd_weights(rng, (out_c, cs, k, k), bits, keep)
        return conv(name, src, dst, w, m, stride=stride, padding=pad, offset=offset, bits=bits)

    n_pops = int(rng.integers(2, max_pops + 1))
    # stem
    c = int(rng.integers(1, max_c + 1))
    pops.append(new_lif("p0", (c, hw0, hw0)))
    shapes["p0"] = (c, hw0, hw0)
    syns.append(conv_edge("input.p0", "input", "p0", c, 0, hw0))
    for i in range(1, n_pops):
        name = f"p{i}"
        prev = [p.name for p in pops]
        # spatial size: same as the last population, or reduced by 2
        last_hw = shapes[prev[-1]][1]
        hw = (last_hw - 1) // 2 + 1 if (rng.random() < 0.3 and last_hw > 2) else last_hw
        # sources whose size maps to hw by stride 1 or 2
        ok = [s for s in prev if shapes[s][1] == hw or (shapes[s][1] - 1) // 2 + 1 == hw]
        n_src = int(rng.integers(1, min(3, len(ok)) + 1))
        srcs = list(rng.choice(ok, size=n_src, replace=False))
        if prev[-1] in ok and prev[-1] not in srcs and rng.random() < 0.7:
            srcs[0] = prev[-1]                    # mostly a chain plus skips
        c = int(rng.integers(2, max_c + 1))
        c = max(c, max(shapes[s][0] for s in srcs) if rng.random() < 0.5 else c)
        shapes[name] = (c, hw, hw)
        pops.append(new_lif(name, (c, hw, hw)))
        covered = np.zeros(c, bool)
        for j, s in enumerate(srcs):
            cs, hs, _ = shapes[s]
            stride = 1 if hs == hw else 2
            if cs <= c and rng.random() < 0.35:
                off = int(rng.integers(0, c - cs + 1))
                n = int(rng.choice([1, 3, 17, 64, 200, 300, -5]))
                syns.append(identity(f"{s}.{name}.id", s, name, n, stride=stride, offset=off))
                covered[off:off + cs] = True
            else:
                width = int(rng.integers(1, c + 1)) if rng.random() < 0.4 else c
                off = int(rng.integers(0, c - width + 1))
                syns.append(conv_edge(f"{s}.{name}", s, name, width, off, hw))
                covered[off:off + width] = True
        if not covered.all():
            s = srcs[0]
            syns.append(conv_edge(f"{s}.{name}.fill", s, name, c, 0, hw))
    # readout: dense from the last population and maybe one more
    k = int(rng.integers(2, 6))
    pops.append(readout("out", k, bias=rng.integers(-20, 21, k)))
    srcs = [pops[-2].name]
    if len(pops) > 3 and rng.random() < 0.5:
        srcs.append(pops[int(rng.integers(0, len(pops) - 2))].name)
    for s in srcs:
        cs, hs, ws = shapes[s]
        bits = int(rng.choice([2, 4, 8]))
        w, m = odd_weights(rng, (k, cs * hs * ws), bits, float(rng.choice([1.0, 0.5])))
        syns.append(dense(f"{s}.out", s, "out", w, m, bits=bits))
    g = make_graph(inp, pops, syns, T, balanced=bool(rng.random() < 0.5))
    return calibrate(g, random_input(g, 4, seed), seed)



def digits_graph(seed: int = 0, T: int = 4, C: int = 6, fit_readout: bool = False) -> Graph:
    """A small net for the bundled `digits` dataset (1 x 8 x 8, 10 classes), meta names the dataset.

    stem conv3x3 (C) -> A; A -> conv3x3/s2 (2C) + identity/s2 skip into channels [0, C) -> B;
    B -> dense -> readout. With `fit_readout` the readout is a least-squares fit on the train
    split's spike counts of B (a reservoir readout: accuracy is meaningful, nothing is trained
    with gradients), quantised to odd 8-bit integers.
    """
    rng = np.random.default_rng(seed)
    inp = InputNode(shape=(1, 8, 8), encoding="graded", bits=8)
    pops = [lif("A", (C, 8, 8), bias=rng.integers(-4, 5, C)), lif("B", (2 * C, 4, 4)), readout("out", 10)]
    wd, _ = odd_weights(rng, (10, 2 * C * 16), 8)
    syns = [conv("in.A", "input", "A", odd_weights(rng, (C, 1, 3, 3), 4)[0]),
            conv("A.B", "A", "B", *odd_weights(rng, (2 * C, C, 3, 3), 2, keep=0.5), stride=2, padding=1, bits=2),
            identity("A.B.skip", "A", "B", 3, stride=2),
            dense("B.out", "B", "out", wd)]
    g = make_graph(inp, pops, syns, T)
    g = g.replace(meta={"dataset": {"name": "digits", "num_classes": 10, "input_shape": [1, 8, 8]}})
    from lsnn.data.datasets import load_dataset

    train = load_dataset("digits", None, "train")
    x = np.rint(train.x * 255).astype(np.int32)
    g = calibrate(g, x[:64], seed)
    if not fit_readout:
        return g
    from lsnn.runtime.emulator import Emulator

    res = Emulator(g).run(x, record_spikes=True)
    feats = res.spikes["B"].sum(axis=1).reshape(len(x), -1).astype(np.float64)   # [N, C*H*W] C-major
    y1 = np.eye(10)[train.y]
    f1 = np.hstack([feats, np.ones((len(x), 1))])
    w = np.linalg.solve(f1.T @ f1 + 1.0 * np.eye(f1.shape[1]), f1.T @ y1).T      # [10, n + 1]
    scale = 127.0 / np.abs(w[:, :-1]).max()
    wq = (2 * np.floor(w[:, :-1] * scale / 2) + 1).astype(np.int32)              # odd, |w| <= 127
    bias = np.rint(w[:, -1] * scale / T).astype(np.int32)
    syns = [dense("B.out", "B", "out", wq) if s.name == "B.out" else s for s in g.synapses]
    pops = [dataclasses.replace(p, bias_mant=bias) if p.name == "out" else p for p in g.populations]
    return g.with_synapses(syns).with_populations(pops)


def tiny_graph(T: int = 2) -> Graph:
    """input (1,2,2) 2-bit graded -> conv1x1 (w=3) -> A (vth 5) -> dense -> readout (2 classes)."""
    inp = InputNode(shape=(1, 2, 2), encoding="graded", bits=2)
    pops = [lif("A", (1, 2, 2), vth=5), readout("out", 2, bias=[1, 0])]
    syns = [conv("in.A", "input", "A", np.full((1, 1, 1, 1), 3), bits=2),
            dense("A.out", "A", "out", np.array([[1, 1, 1, 1], [3, -1, -1, 3]]), bits=2)]
    return make_graph(inp, pops, syns, T)
