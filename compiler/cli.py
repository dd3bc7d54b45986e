"""`lsnn compile`: lower a searched model.pt to a chip-legal NetX HDF5 for a hardware target.

Only parses options and calls `compile_artifact`; every failure is an LsnnError that
lsnn/cli.py prints as one `lsnn: error: ...` (design-rule violations: all of them) with exit 2.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from lsnn.errors import ConfigError


def _list_targets() -> str:
    import yaml

    from lsnn.hw_profiles import bundled_profiles

    lines = []
    for name, path in sorted(bundled_profiles().items()):
        try:
            desc = (yaml.safe_load(path.read_text()) or {}).get("description", "")
        except yaml.YAMLError:
            desc = "(unreadable)"
        lines.append(f"{name:10s} {desc}")
    return "\n".join(lines)


@click.command("compile")
@click.argument("model", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", default=None, help="Bundled hardware profile (default loihi2; see --list-targets).")
@click.option("--profile", "profile_file", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="A custom hardware profile YAML instead of --target.")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Output model.net (default: MODEL with suffix .net).")
@click.option("--report-json", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Report path (default: OUTPUT with suffix .report.json).")
@click.option("--nir", "nir_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the compiled network as a NIR graph (HDF5) for other simulators and chips.")
@click.option("--list-targets", is_flag=True, help="List the bundled targets and exit.")
def compile_cmd(model: Optional[Path], target: Optional[str], profile_file: Optional[Path], output: Optional[Path],
                report_json: Optional[Path], nir_path: Optional[Path], list_targets: bool) -> None:
    """Lower MODEL (model.pt) to NetX HDF5 (model.net) + model.report.json for a hardware target."""
    if list_targets:
        click.echo(_list_targets())
        return
    from lsnn.compiler.pipeline import compile_artifact, default_report_path
    from lsnn.compiler.report import format_table
    from lsnn.hw_profiles.profile import load_profile

    if model is None:
        raise click.UsageError("missing argument MODEL (a model.pt written by lsnn search)")
    if target is not None and profile_file is not None:
        raise ConfigError("give either --target or --profile, not both")
    profile = load_profile(path=profile_file) if profile_file is not None else load_profile(target=target or "loihi2")
    out = output if output is not None else model.with_suffix(".net")
    rep = report_json if report_json is not None else default_report_path(out)
    result = compile_artifact(model, profile, out=out, report_json=rep)
    click.echo(format_table(result.report))
    click.echo(f"wrote {result.net_path} and {result.report_path}")
    if nir_path is not None:
        from lsnn.compiler.backend.nir_graph import write_nir

        write_nir(result.graph, nir_path)
        click.echo(f"wrote {nir_path} (NIR, ideal time, integer units; README 'lsnn compile')")
