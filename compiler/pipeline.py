"""The compiler pipeline: model.pt -> ordered pure passes -> model.net + model.report.json.

`PASSES` is the ordered list after `read_artifact`; each is `(graph, profile) -> graph`.
`compile_artifact` runs them, times each, builds the report and (when an output path is
given) emits both files atomically. Errors are LsnnError subclasses: ArtifactError for a bad
model.pt, DesignRuleError with every violation for a network the target cannot run.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from lsnn.compiler.backend.emit import emit
from lsnn.compiler.frontend import read_artifact
from lsnn.compiler.ir import Graph
from lsnn.compiler.passes.check_rules import check_rules
from lsnn.compiler.passes.delay_balance import delay_balance
from lsnn.compiler.passes.fold import fold
from lsnn.compiler.passes.place import place
from lsnn.compiler.passes.quantize import quantize
from lsnn.compiler.passes.sparsify import sparsify
from lsnn.compiler.passes.split_readout import split_readout
from lsnn.compiler.report import build_report
from lsnn.hw_profiles.profile import Profile, profile_to_yaml_dict

PassFn = Callable[[Graph, Profile], Graph]

PASSES: tuple[tuple[str, PassFn], ...] = (
    ("fold", fold),
    ("quantize", quantize),
    ("split_readout", split_readout),
    ("sparsify", sparsify),
    ("delay_balance", delay_balance),
    ("check_rules", check_rules),
    ("place", place),
)


@dataclass(frozen=True, eq=False)
class CompileResult:
    """The placed integer graph, its report, where files went (None if not emitted), pass timings."""

    graph: Graph
    report: dict[str, Any]
    net_path: Optional[Path]
    report_path: Optional[Path]
    timings: dict[str, float]


def default_report_path(net_path: str | os.PathLike) -> Path:
    """model.net -> model.report.json (beside it)."""
    p = Path(net_path)
    return p.with_name(p.stem + ".report.json")


def lower(graph: Graph, profile: Profile, timings: Optional[dict[str, float]] = None) -> Graph:
    """Run PASSES on a float-stage graph (timing each into `timings` if given)."""
    for name, fn in PASSES:
        t0 = time.perf_counter()
        graph = fn(graph, profile)
        if timings is not None:
            timings[name] = time.perf_counter() - t0
    return graph


def compile_artifact(artifact_or_path: Union[str, os.PathLike, Mapping[str, Any]], profile: Profile,
                     out: Optional[str | os.PathLike] = None,
                     report_json: Optional[str | os.PathLike] = None) -> CompileResult:
    """Compile a model.pt path or an artifact dict for `profile`; emit files if `out` is given."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if isinstance(artifact_or_path, Mapping):
        artifact, source = artifact_or_path, "<artifact>"
    else:
        from lsnn.contract.artifact import load_artifact

        source = str(artifact_or_path)
        artifact = load_artifact(artifact_or_path)
    timings["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = read_artifact(artifact, source=source)
    timings["read_artifact"] = time.perf_counter() - t0
    graph = lower(graph, profile, timings)
    graph = graph.replace(meta={**graph.meta, "profile": profile_to_yaml_dict(profile)})   # read_net re-checks it
    net_path = Path(out) if out is not None else None
    rep_path = None
    if net_path is not None:
        rep_path = Path(report_json) if report_json is not None else default_report_path(net_path)
    report = build_report(graph, profile, timings, net_path=str(net_path) if net_path else None)
    if net_path is not None:
        t0 = time.perf_counter()
        emit(graph, net_path, report, rep_path)
        timings["emit"] = time.perf_counter() - t0
    return CompileResult(graph=graph, report=report, net_path=net_path, report_path=rep_path, timings=timings)
