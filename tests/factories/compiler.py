"""Small model.pt-shaped artifacts for the compiler's tests and benchmark (numpy only, no torch).

Weights follow docs/SEMANTICS.md 2: a conv/dense group at b searched bits has integers that are
odd with |w| <= 2^b - 1 (EdMIPS grid in units of Delta/2), pruned entries exactly 0, and
`weight = scale * w_int` with the destination's scale; identity groups carry
`n_P = round(1 / s_P)`; biases and thresholds are integers times the scale.

- `chain_artifact`: input -> stem conv -> conv (stride 2) -> dense readout (NetX-loadable).
- `skip_concat_artifact`: a skip (identity) edge, a concat consumer (one group per node
  population), a population fed by two channel slices, a skip-only population; hand-computed
  depths in `SKIP_CONCAT_DEPTHS` / `SKIP_CONCAT_DELAYS`.
- `paper_artifact`: the paper-shaped CIFAR backbone (stem, cells of two 1x1 preprocessing
  populations and 4 node populations, conv3x3 / skip node edges, concat consumers, dense
  readout), random genotype and weights, for the benchmark.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

EDMIPS_BITS = (1, 2, 4)


def grid_weights(rng: np.random.Generator, shape: Sequence[int], bits: int, prune: float = 0.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Random odd integers on the b-bit EdMIPS grid (|w| <= 2^b - 1) and a top-k style mask."""
    shape = tuple(int(s) for s in shape)
    k = rng.integers(-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) + 1, size=shape)
    w = (2 * k - 1).astype(np.int64)
    n = int(np.prod(shape))
    keep = max(1, int(round((1.0 - prune) * n)))
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=keep, replace=False)] = True
    mask = mask.reshape(shape)
    w[~mask] = 0
    return w, mask


class ArtifactBuilder:
    """Builds an artifact dict population by population (scales chosen at creation)."""

    def __init__(self, in_shape: Sequence[int], T: int = 4, in_bits: int = 8, num_classes: int = 3,
                 seed: int = 0, encoding: str = "graded") -> None:
        self.encoding = encoding
        self.rng = np.random.default_rng(seed)
        self.in_shape = tuple(int(x) for x in in_shape)
        self.T = T
        self.in_bits = in_bits
        self.num_classes = num_classes
        self.pops: list[dict[str, Any]] = []
        self.syns: list[dict[str, Any]] = []
        self._scale: dict[str, float] = {}
        self._shape: dict[str, tuple[int, int, int]] = {"input": self.in_shape}
        self._int: dict[str, dict[str, Any]] = {}

    def shape(self, name: str) -> tuple[int, int, int]:
        return self._shape[name]

    def population(self, name: str, shape: Sequence[int], kind: str = "lif", scale: Optional[float] = None,
                   vth_int: Optional[int] = None, bias_range: int = 8) -> str:
        """Add a population; the scale is random (a Delta/2) unless given."""
        shape = tuple(int(x) for x in shape)
        if scale is None:
            scale = float(self.rng.uniform(0.004, 0.05))
        bias_int = self.rng.integers(-bias_range, bias_range + 1, size=shape[0])
        if kind == "lif":
            if vth_int is None:
                vth_int = int(self.rng.integers(20, 200))
            vth = float(vth_int * scale)
        else:
            vth = None
        self.pops.append({"name": name, "kind": kind, "shape": list(shape), "scale": scale, "vth": vth,
                          "bias": (bias_int * scale).astype(np.float32), "tau": 0.2 if kind == "lif" else 0.0})
        self._scale[name] = scale
        self._shape[name] = shape
        self._int[name] = {"bias": bias_int, "vth": vth_int}
        return name

    def _syn(self, name: str, kind: str, src: str, dst: str, w_int: np.ndarray, mask: Optional[np.ndarray],
             stride: int, padding: int, offset: int, bits: Optional[int]) -> dict[str, Any]:
        scale = self._scale[dst]
        entry = {"name": name, "kind": kind, "src": src, "dst": dst,
                 "weight": (np.asarray(w_int, dtype=np.float64) * scale).astype(np.float32)
                 if kind != "identity" else np.asarray(float(w_int) * scale, dtype=np.float32),
                 "mask": mask, "stride": stride, "padding": padding, "dst_channel_offset": offset,
                 "bits": bits, "delta": 2 * scale if kind != "identity" else None, "scale": scale}
        # float32 tensors of (int * scale) are what the searcher saves: keep the exact ints too
        entry["_w_int"] = np.asarray(w_int)
        self.syns.append(entry)
        return entry

    def conv(self, name: str, src: str, dst: str, out_ch: int, k: int = 3, stride: int = 1,
             padding: Optional[int] = None, bits: int = 2, prune: float = 0.0, offset: int = 0,
             in_ch: Optional[int] = None, w_int: Optional[np.ndarray] = None) -> dict[str, Any]:
        padding = k // 2 if padding is None else padding
        ci = self._shape[src][0] if in_ch is None else in_ch
        if w_int is None:
            w_int, mask = grid_weights(self.rng, (out_ch, ci, k, k), bits, prune)
        else:
            mask = np.asarray(w_int) != 0
        return self._syn(name, "conv", src, dst, w_int, mask if prune > 0 else None, stride, padding, offset, bits)

    def identity(self, name: str, src: str, dst: str, stride: int = 1, offset: int = 0) -> dict[str, Any]:
        n = int(round(1.0 / self._scale[dst]))
        return self._syn(name, "identity", src, dst, np.asarray(n), None, stride, 0, offset, None)

    def dense(self, name: str, src: str, dst: str, bits: int = 7, prune: float = 0.0,
              repeat_hw: bool = True) -> dict[str, Any]:
        c, h, w = self._shape[src]
        o = self._shape[dst][0]
        if repeat_hw:  # global average pool + FC: one weight per (class, channel), repeated over H*W
            base, bmask = grid_weights(self.rng, (o, c), bits, prune)
            w_int = np.repeat(base, h * w, axis=1)
            mask = np.repeat(bmask, h * w, axis=1)
        else:
            w_int, mask = grid_weights(self.rng, (o, c * h * w), bits, prune)
        return self._syn(name, "dense", src, dst, w_int, mask if prune > 0 else None, 1, 0, 0, bits)

    def build(self, metrics: Optional[dict[str, Any]] = None, keep_ints: bool = False) -> dict[str, Any]:
        syns = []
        for s in self.syns:
            s = dict(s)
            if not keep_ints:
                s.pop("_w_int")
            syns.append(s)
        c = self.in_shape[0]
        return {
            "format": "lsnn.model", "version": 1, "created_by": "tests.compiler_factories",
            "dataset": {"name": "synthetic", "num_classes": self.num_classes, "input_shape": list(self.in_shape),
                        "classes": [str(i) for i in range(self.num_classes)]},
            "input_encoding": {"kind": self.encoding, "bits": self.in_bits if self.encoding == "graded" else 1,
                               "offset": [0.0] * c, "span": [1.0] * c},
            "T": self.T,
            "neuron": {"model": "lif", "tau": 0.2, "v_reset": 0.0, "surrogate": "dspike", "temperature": 3.0,
                       "du": 4095, "dv": 3277},
            "genotype": {},
            "backbone": {},
            "populations": [dict(p) for p in self.pops],
            "synapses": syns,
            "metrics": metrics if metrics is not None else {
                "test_accuracy": 0.5, "test_accuracy_int": None, "model_size_bytes": 123.0, "synops": 4567.0,
                "bit_synops": 8910.0, "energy_pj": 1112.0, "spike_rates": {}},
            "train": {"seed": 0},
        }

    def ints(self) -> dict[str, np.ndarray]:
        """The exact integer weights of every group (for tests comparing with the compiler)."""
        return {s["name"]: np.asarray(s["_w_int"]) for s in self.syns}

    def pop_ints(self, name: str) -> dict[str, Any]:
        return self._int[name]


def chain_builder(seed: int = 0, in_shape: Sequence[int] = (2, 8, 8), channels: Sequence[int] = (4, 6),
                  num_classes: int = 3, bits: Sequence[int] = (2, 4), prune: float = 0.5,
                  stem_bits: int = 7, fc_bits: int = 7, T: int = 4, encoding: str = "graded") -> ArtifactBuilder:
    """input -> stem conv3x3 -> conv3x3 stride 2 -> ... -> dense readout (a NetX chain)."""
    b = ArtifactBuilder(in_shape, T=T, num_classes=num_classes, seed=seed, encoding=encoding)
    prev = "input"
    h, w = in_shape[1], in_shape[2]
    for i, c in enumerate(channels):
        stride = 1 if i == 0 else 2
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        name = "stem" if i == 0 else f"conv{i}"
        if i == 0:  # stem scale is in units of the normalised input (docs/SEMANTICS.md 2)
            scale = float(b.rng.uniform(0.004, 0.05)) / (2 ** b.in_bits - 1)
        else:
            scale = None
        b.population(name, (c, h, w), scale=scale)
        b.conv(f"{name}.conv", prev, name, c, stride=stride, bits=stem_bits if i == 0 else bits[(i - 1) % len(bits)],
               prune=0.0 if i == 0 else prune)
        prev = name
    b.population("readout", (num_classes, 1, 1), kind="readout")
    b.dense("readout.fc", prev, "readout", bits=fc_bits)
    return b


def chain_artifact(**kw: Any) -> dict[str, Any]:
    return chain_builder(**kw).build()


# Depths and delays of skip_concat_artifact, computed by hand from docs/SEMANTICS.md 4.
SKIP_CONCAT_DEPTHS = {"stem": 1, "pre0": 2, "n0": 3, "n1": 4, "n2": 2, "post": 5, "split": 5, "readout": 6}
SKIP_CONCAT_DELAYS = {"stem.conv": 0, "pre0.conv": 0, "n0.conv": 0, "n1.conv": 0, "n1.skip": 1,
                      "n2.skip": 0, "post.from_n0": 1, "post.from_n1": 0, "split.lo": 2, "split.hi": 0,
                      "readout.post": 0, "readout.split": 0}


def skip_concat_builder(seed: int = 1, prune: float = 0.6, bits: int = 2, stem_bits: int = 7,
                        fc_bits: int = 7, encoding: str = "graded") -> ArtifactBuilder:
    """A small cell-like graph with a skip, a concat consumer, channel slices and a skip-only node."""
    b = ArtifactBuilder((2, 6, 6), T=3, num_classes=4, seed=seed, encoding=encoding)
    b.population("stem", (4, 6, 6), scale=0.01 / 255)
    b.conv("stem.conv", "input", "stem", 4, bits=stem_bits)
    b.population("pre0", (4, 6, 6))
    b.conv("pre0.conv", "stem", "pre0", 4, k=1, bits=bits, prune=prune)
    b.population("n0", (4, 6, 6))
    b.conv("n0.conv", "pre0", "n0", 4, bits=bits, prune=prune)
    b.population("n1", (4, 6, 6))
    b.conv("n1.conv", "n0", "n1", 4, bits=bits, prune=prune)
    b.identity("n1.skip", "pre0", "n1")
    b.population("n2", (4, 3, 3), scale=1.0 / 64)           # skip-only population
    b.identity("n2.skip", "stem", "n2", stride=2)
    # concat(n0, n1) -> post (1x1 conv, stride 2): one group per node population, summed
    b.population("post", (5, 3, 3))
    full, fmask = grid_weights(b.rng, (5, 8, 1, 1), bits, prune)
    b.conv("post.from_n0", "n0", "post", 5, k=1, stride=2, w_int=full[:, :4], prune=prune)
    b.conv("post.from_n1", "n1", "post", 5, k=1, stride=2, w_int=full[:, 4:], prune=prune)
    # a population fed by two channel slices
    b.population("split", (6, 3, 3))
    b.conv("split.lo", "n2", "split", 3, bits=bits, prune=prune, offset=0)
    b.conv("split.hi", "n1", "split", 3, stride=2, bits=bits, prune=prune, offset=3)
    b.population("readout", (4, 1, 1), kind="readout")
    b.dense("readout.post", "post", "readout", bits=fc_bits)
    b.dense("readout.split", "split", "readout", bits=fc_bits)
    return b


def skip_concat_artifact(**kw: Any) -> dict[str, Any]:
    return skip_concat_builder(**kw).build()


def random_genotype(rng: np.random.Generator, cells: int = 8, nodes: int = 4, reductions: Sequence[int] = (2, 5),
                    p_conv: float = 0.7) -> list[dict[str, Any]]:
    """Per cell: reduction flag, bits in {1,2,4}, per node two (op, src) edges (0, 1 = cell inputs)."""
    out = []
    for k in range(cells):
        node_edges = []
        for j in range(nodes):
            srcs = rng.choice(2 + j, size=2, replace=False)
            node_edges.append([("conv3x3" if rng.random() < p_conv else "skip", int(s)) for s in srcs])
        out.append({"reduction": k in reductions, "bits": int(rng.choice(EDMIPS_BITS)), "nodes": node_edges})
    return out


def paper_artifact(C: int = 16, cells: int = 8, in_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10,
                   prune: float = 0.8, seed: int = 0, stem_multiplier: int = 3, stem_bits: int = 7,
                   fc_bits: int = 7, T: int = 4, reductions: Sequence[int] = (2, 5)) -> dict[str, Any]:
    """The paper-shaped CIFAR backbone of docs/SEMANTICS.md 1 with a random genotype and weights.

    Stem conv3x3 (stem_multiplier * C channels); each cell k has pre0/pre1 1x1 populations (pre0
    with stride 2 when cell k-1 reduced), 4 node populations whose edges are conv3x3 or skip
    (stride 2 from the cell inputs in a reduction cell); consumers of a cell output (the concat
    of its nodes) get one group per node population; readout = pool + FC as dense groups.
    """
    b = ArtifactBuilder(in_shape, T=T, num_classes=num_classes, seed=seed)
    rng = b.rng
    geno = random_genotype(rng, cells=cells, reductions=reductions)
    h, w = in_shape[1], in_shape[2]
    cs = stem_multiplier * C
    b.population("stem", (cs, h, w), scale=float(rng.uniform(0.004, 0.05)) / (2 ** b.in_bits - 1))
    b.conv("stem.conv", "input", "stem", cs, bits=stem_bits)
    # a cell output is a list of populations (concatenated in channel order)
    s0, s1 = ["stem"], ["stem"]
    c_cur = C
    prev_red = False
    for k, cell in enumerate(geno):
        red = cell["reduction"]
        if red:
            c_cur *= 2
        bits = cell["bits"]
        hw_in = b.shape(s1[0])[1:]
        pre = []
        for idx, (srcs, stride) in enumerate(((s0, 2 if prev_red else 1), (s1, 1))):
            name = f"cell{k}.pre{idx}"
            sh = b.shape(srcs[0])[1:]
            oh, ow = (sh[0] - 1) // stride + 1, (sh[1] - 1) // stride + 1
            b.population(name, (c_cur, oh, ow))
            for src in srcs:
                b.conv(f"{name}.from_{src}", src, name, c_cur, k=1, stride=stride, padding=0, bits=bits, prune=prune)
            pre.append(name)
        assert b.shape(pre[0])[1:] == b.shape(pre[1])[1:] == tuple(hw_in)
        oh, ow = ((hw_in[0] - 1) // 2 + 1, (hw_in[1] - 1) // 2 + 1) if red else tuple(hw_in)
        nodes: list[str] = []
        for j, edges in enumerate(cell["nodes"]):
            name = f"cell{k}.node{j}"
            has_conv = any(op == "conv3x3" for op, _ in edges)
            b.population(name, (c_cur, oh, ow), scale=None if has_conv else 1.0 / 64)
            for e, (op, src_i) in enumerate(edges):
                src = pre[src_i] if src_i < 2 else nodes[src_i - 2]
                stride = 2 if (red and src_i < 2) else 1
                if op == "conv3x3":
                    b.conv(f"{name}.edge{e}", src, name, c_cur, stride=stride, bits=bits, prune=prune)
                else:
                    b.identity(f"{name}.edge{e}", src, name, stride=stride)
            nodes.append(name)
        s0, s1 = s1, nodes
        prev_red = red
    b.population("readout", (num_classes, 1, 1), kind="readout", scale=None)
    for src in s1:
        b.dense(f"readout.from_{src}", src, "readout", bits=fc_bits)
    art = b.build()
    art["backbone"] = {"C": C, "cells": cells, "nodes": 4, "reductions": list(reductions), "stem_bits": stem_bits,
                       "fc_bits": fc_bits, "in_bits": b.in_bits}
    art["genotype"] = {"cells": geno}
    return art


def to_torch(artifact: dict[str, Any]) -> dict[str, Any]:
    """The same artifact with tensors instead of arrays (what lsnn.contract.artifact.save_artifact stores)."""
    import torch

    def conv(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            return torch.from_numpy(np.ascontiguousarray(x))
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, list):
            return [conv(v) for v in x]
        return x

    return conv(artifact)


def assert_tree_equal(a: Any, b: Any, path: str = "") -> None:
    """Deep equality of nested dicts/lists with numpy arrays compared exactly (values, shape, dtype kind)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_, b_ = np.asarray(a), np.asarray(b)
        assert a_.shape == b_.shape, f"{path}: shape {a_.shape} != {b_.shape}"
        assert a_.dtype.kind == b_.dtype.kind, f"{path}: dtype {a_.dtype} != {b_.dtype}"
        assert np.array_equal(a_, b_), f"{path}: arrays differ"
        return
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_tree_equal(a[k], b[k], f"{path}.{k}")
        return
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{path}: {a!r} != {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_tree_equal(x, y, f"{path}[{i}]")
        return
    assert type(a) == type(b) and a == b, f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})"


def compile_graph(artifact: dict[str, Any], profile: Any = None, upto: str = "quantize") -> Any:
    """Run the compiler passes on an artifact dict up to (and including) pass `upto`."""
    from lsnn.compiler.frontend import read_artifact
    from lsnn.compiler.passes.fold import fold
    from lsnn.compiler.passes.quantize import quantize

    g = read_artifact(artifact)
    if upto == "read_artifact":
        return g
    g = fold(g, profile)
    if upto == "fold":
        return g
    return quantize(g, profile)
