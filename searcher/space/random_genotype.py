"""Random genotypes for tests, benchmarks and the compiler/runtime's random-network checks.

`random_genotype(rng, ...)` draws, per cell, a bitwidth in `bits` and, per node j, two edges
from distinct earlier inputs (0 = s0, 1 = s1, 2 + i = node i < j), each `skip` with probability
`p_skip` else `conv3x3`; T in [T_min, T_max]; the prune rate from `prune_rates`. `rng` may be an
int seed, a `random.Random` (hypothesis' `st.randoms()`) or a `numpy.random.Generator`, so
hypothesis can drive every choice. `genotypes(...)` is a ready hypothesis strategy.
"""
from __future__ import annotations

import random
from typing import Any, Optional, Sequence, Union

import numpy as np

from lsnn.errors import ConfigError
from lsnn.searcher.space.genotype import CellGene, Edge, Genotype

Rng = Union[int, random.Random, np.random.Generator]


def _as_random(rng: Rng) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, np.random.Generator):
        return random.Random(int(rng.integers(0, 2 ** 63 - 1)))
    if isinstance(rng, (int, np.integer)):
        return random.Random(int(rng))
    raise ConfigError(f"rng must be an int seed, random.Random or numpy Generator, got {type(rng).__name__}")


def default_reductions(cells: int) -> tuple[int, ...]:
    """DARTS' rule: reduction cells at cells // 3 and 2 * cells // 3 (CIFAR 8 cells: 2, 5)."""
    if cells < 3:
        return ()
    return tuple(sorted({cells // 3, 2 * cells // 3}))


def random_cell(r: random.Random, reduction: bool, nodes: int = 4, bits: Sequence[int] = (1, 2, 4),
                p_skip: float = 0.5, edges_per_node: int = 2) -> CellGene:
    node_edges = []
    for j in range(nodes):
        n_in = 2 + j
        k = min(edges_per_node, n_in)
        srcs = r.sample(range(n_in), k)
        node_edges.append(tuple(Edge("skip" if r.random() < p_skip else "conv3x3", int(s)) for s in sorted(srcs)))
    return CellGene(reduction=bool(reduction), bits=int(r.choice(list(bits))), nodes=tuple(node_edges))


def random_genotype(rng: Rng, cells: int = 3, reductions: Optional[Sequence[int]] = None, C: int = 4,
                    T_max: int = 4, input_shape: Sequence[int] = (3, 8, 8), num_classes: int = 10,
                    nodes: int = 4, bits: Sequence[int] = (1, 2, 4), p_skip: float = 0.5,
                    prune_rates: Sequence[float] = (0.0, 0.5, 0.8, 0.9), T_min: int = 1,
                    aux_cell: Optional[int] = None, edges_per_node: int = 2,
                    meta: Optional[dict[str, Any]] = None) -> Genotype:
    """A random valid Genotype (see the module docstring). reductions=None: DARTS' rule."""
    r = _as_random(rng)
    if cells < 1 or nodes < 1 or C < 1:
        raise ConfigError(f"cells, nodes and C must be >= 1, got {cells}, {nodes}, {C}")
    if not 1 <= T_min <= T_max:
        raise ConfigError(f"need 1 <= T_min <= T_max, got {T_min}, {T_max}")
    red = set(default_reductions(cells) if reductions is None else (int(i) for i in reductions))
    if any(i < 0 or i >= cells for i in red):
        raise ConfigError(f"reductions {sorted(red)} must be cell indices in [0, {cells})")
    if aux_cell is not None and not 0 <= aux_cell < cells:
        raise ConfigError(f"aux_cell {aux_cell} must be a cell index in [0, {cells})")
    gene = tuple(random_cell(r, k in red, nodes, bits, p_skip, edges_per_node) for k in range(cells))
    return Genotype(cells=gene, T=r.randint(T_min, T_max), C=int(C), prune_rate=float(r.choice(list(prune_rates))),
                    num_classes=int(num_classes), input_shape=tuple(int(v) for v in input_shape),
                    aux_cell=aux_cell, meta=dict(meta or {"source": "random"}))


def genotypes(max_cells: int = 3, C: Sequence[int] = (2, 4), T_max: int = 3,
              input_shapes: Sequence[Sequence[int]] = ((1, 5, 5), (2, 8, 6)), num_classes: int = 3,
              p_skip: float = 0.5):
    """A hypothesis strategy of small random genotypes (reductions anywhere, odd sizes included)."""
    from hypothesis import strategies as st

    @st.composite
    def _g(draw):
        cells = draw(st.integers(1, max_cells))
        reds = draw(st.sets(st.integers(0, cells - 1), max_size=2))
        r = draw(st.randoms(use_true_random=False))
        return random_genotype(r, cells=cells, reductions=sorted(reds), C=draw(st.sampled_from(list(C))),
                               T_max=T_max, input_shape=draw(st.sampled_from([tuple(s) for s in input_shapes])),
                               num_classes=num_classes, p_skip=p_skip,
                               aux_cell=draw(st.one_of(st.none(), st.integers(0, cells - 1))))

    return _g()
