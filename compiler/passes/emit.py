"""Pass 8: write model.net and model.report.json atomically (both or neither).

Each file is written to a temp file in its destination folder, then both are renamed into
place; on any error the temp files are removed, and if the second rename fails the first
output is removed again, so a failed compile never leaves an output behind.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional

from lsnn.compiler.hdf5_io import default_file_mode, write_net
from lsnn.compiler.ir import Graph


def _tmp_beside(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, default_file_mode())
    return tmp


def emit(graph: Graph, net_path: str | os.PathLike, report: Optional[Mapping[str, Any]] = None,
         report_path: Optional[str | os.PathLike] = None) -> Graph:
    """Write the net (and the report if given); return the graph unchanged."""
    net_path = Path(net_path)
    temps: list[str] = []
    done: list[Path] = []
    try:
        tmp_net = _tmp_beside(net_path)
        temps.append(tmp_net)
        write_net(graph, tmp_net)
        tmp_rep = None
        if report is not None and report_path is not None:
            tmp_rep = _tmp_beside(Path(report_path))
            temps.append(tmp_rep)
            with open(tmp_rep, "w") as f:
                json.dump(report, f, indent=1, allow_nan=False)
                f.write("\n")
        os.replace(tmp_net, net_path)
        done.append(net_path)
        if tmp_rep is not None:
            os.replace(tmp_rep, report_path)
            done.append(Path(report_path))
    except BaseException:
        for p in done:
            if p.exists():
                p.unlink()
        raise
    finally:
        for t in temps:
            if os.path.exists(t):
                os.unlink(t)
    return graph
