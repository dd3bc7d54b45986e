"""The last step of a compile: write model.net and model.report.json atomically (both or neither).

`lsnn.io.atomic_paths` writes each file to a temp file beside it and renames both into place;
on any error the temp files are removed, and if the second rename fails the first output is
removed again, so a failed compile never leaves an output behind.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Optional

from lsnn.compiler.backend.netx import write_net_file
from lsnn.compiler.ir import Graph
from lsnn.io import atomic_paths


def emit(graph: Graph, net_path: str | os.PathLike, report: Optional[Mapping[str, Any]] = None,
         report_path: Optional[str | os.PathLike] = None) -> Graph:
    """Write the net (and the report if given); return the graph unchanged."""
    with_report = report is not None and report_path is not None
    paths = [net_path, report_path] if with_report else [net_path]
    with atomic_paths(*paths) as temps:
        write_net_file(graph, temps[0])
        if with_report:
            with open(temps[1], "w") as f:
                json.dump(report, f, indent=1, allow_nan=False)
                f.write("\n")
    return graph
