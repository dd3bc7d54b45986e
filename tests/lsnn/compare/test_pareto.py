"""pareto_front on hand-made point sets (ties, duplicates, keys), per-strategy fronts, the figure."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lsnn.compare.pareto import pareto_front, plot_pareto, strategy_fronts
from lsnn.compare.table import PointStats

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_front_of_a_hand_made_set():
    points = [(3.0, 0.6), (1.0, 0.5), (4.0, 0.9), (2.0, 0.7), (2.5, 0.7), (5.0, 0.85)]
    # (3, .6) and (2.5, .7) lose to (2, .7); (5, .85) loses to (4, .9)
    assert pareto_front(points) == [(1.0, 0.5), (2.0, 0.7), (4.0, 0.9)]
    assert points[0] == (3.0, 0.6)                                  # input untouched


def test_ties():
    assert pareto_front([(1, 0.5), (1, 0.6)]) == [(1, 0.6)]         # same cost: the better accuracy
    assert pareto_front([(2, 0.6), (1, 0.6)]) == [(1, 0.6)]         # same accuracy: the cheaper
    assert pareto_front([(1, 0.6), (2, 0.5), (1, 0.6)]) == [(1, 0.6), (1, 0.6)]   # equal points both stay
    assert pareto_front([(1, 0.5), (2, 0.6), (3, 0.7)]) == [(1, 0.5), (2, 0.6), (3, 0.7)]


def test_empty_single_and_keys():
    assert pareto_front([]) == []
    assert pareto_front([(7, 0.1)]) == [(7, 0.1)]
    runs = [{"n": "a", "c": 10, "acc": 0.8}, {"n": "b", "c": 5, "acc": 0.9}, {"n": "c", "c": 1, "acc": 0.2}]
    front = pareto_front(runs, cost=lambda r: r["c"], accuracy=lambda r: r["acc"])
    assert [r["n"] for r in front] == ["c", "b"]


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=12))
def test_front_points_are_exactly_the_undominated(points):
    front = pareto_front(points)

    def dominated(p):
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points)

    assert sorted(front) == sorted(p for p in points if not dominated(p))
    assert [p[0] for p in front] == sorted(p[0] for p in front)


def _group(strategy: str, point: str, acc: float, size: float, bso: float, std: float = 0.0, n: int = 1):
    keys = ("test_accuracy", "model_size_bytes", "bit_synops")
    return PointStats(strategy, point, n, list(range(n)), dict(zip(keys, (acc, size, bso))),
                      dict.fromkeys(keys, std))


GROUPS = [_group("litesnn", "small", 0.90, 10e3, 20e6, 0.01, 3), _group("litesnn", "large", 0.95, 30e3, 10e6),
          _group("litesnn", "medium", 0.93, 20e3, 30e6), _group("hand", "bits 4 T=3", 0.96, 40e3, 50e6)]


def test_strategy_fronts_per_cost_axis():
    by_bso = strategy_fronts(GROUPS, "bit_synops")
    assert [g.point for g in by_bso["litesnn"]] == ["large"]        # cheapest in Bit-SynOps and the best
    assert [g.point for g in by_bso["hand"]] == ["bits 4 T=3"]
    by_size = strategy_fronts(GROUPS, "model_size_bytes")
    assert [g.point for g in by_size["litesnn"]] == ["small", "medium", "large"]


def test_plot_writes_a_png(tmp_path):
    path = plot_pareto(GROUPS, tmp_path / "pareto.png")
    data = path.read_bytes()
    assert path == tmp_path / "pareto.png" and data.startswith(PNG_MAGIC) and len(data) > 10_000
    one = plot_pareto(GROUPS[:1], tmp_path / "one.tmp")            # format from the code, not the suffix
    assert one.read_bytes().startswith(PNG_MAGIC)
