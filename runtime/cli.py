"""`lsnn run MODEL.net --sim`: run a compiled net on Lava's simulator and the integer emulator.

Only parses options and calls `lsnn.runtime.runner.run_model`; nothing heavy is imported before
the command runs. Errors are LsnnError (one line, exit status 2, via lsnn.cli).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from lsnn.errors import LsnnError


@click.command("run")
@click.argument("net", type=click.Path(dir_okay=False, path_type=str), required=False)
@click.option("--sim", is_flag=True, help="Lava's CPU simulator, Loihi2SimCfg(fixed_pt) (the default).")
@click.option("--hw", is_flag=True, help="Loihi 2 hardware via lava-loihi (must be installed).")
@click.option("--data", "data_dir", type=click.Path(path_type=str), default=None,
              help="Dataset folder or archive (.tar / .tar.xz; not needed for 'digits').")
@click.option("--dataset", default=None, help="Dataset name (default: the one the net was trained on).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "val", "test"]))
@click.option("--samples", type=int, default=8, show_default=True, help="Samples run on Lava.")
@click.option("--limit", type=int, default=None, help="Samples run on the emulator (default: the whole split).")
@click.option("--engine", type=click.Choice(["both", "emulator", "lava"]), default="both", show_default=True)
@click.option("--target", default=None, help="Bundled hardware profile for energy (default: loihi2).")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Hardware profile YAML for energy.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="JSON report (default: NET with suffix .run.json).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Figure of spike rates and SynOps (default: NET with suffix .run.png).")
@click.option("--no-plot", is_flag=True, help="Do not draw the figure.")
@click.option("--emulator-backend", type=click.Choice(["auto", "fast", "numpy"]), default="auto", show_default=True,
              help="fast: fused torch convolutions + compiled numba LIF; numpy: the reference (same integers).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run_cmd(net: Optional[str], sim: bool, hw: bool, data_dir: Optional[str], dataset: Optional[str], split: str,
            samples: int, limit: Optional[int], engine: str, target: Optional[str], profile_path: Optional[str],
            output: Optional[str], plot_path: Optional[str], no_plot: bool, emulator_backend: str,
            quiet: bool) -> None:
    """Run a compiled NET (model.net) on Lava and the integer emulator; report accuracy,
    Lava-vs-emulator agreement, measured vs predicted SynOps, energy and latency."""
    if net is None:
        raise LsnnError("missing MODEL.net (usage: lsnn run MODEL.net --sim)")
    if sim and hw:
        raise LsnnError("give --sim or --hw, not both")
    if hw:
        from lsnn.errors import LavaUnavailableError
        from lsnn.runtime.lava.client import hw_available

        if not hw_available():
            raise LavaUnavailableError("--hw needs lava-loihi (Intel's Loihi 2 backend, available to INRC "
                                       "members), which is not installed here; use --sim")
    from lsnn.runtime import report as rep
    from lsnn.runtime.runner import RunOptions, run_model

    opts = RunOptions(net=net, data_dir=data_dir, dataset=dataset, split=split, samples=samples, limit=limit,
                      engine=engine, target=target, profile=profile_path, hw=hw, progress=not quiet,
                      emulator_backend=emulator_backend)
    report = run_model(opts)
    stem = Path(net)
    out = Path(output) if output else stem.with_suffix(".run.json")
    rep.write_json(report, out)
    for line in rep.summary_lines(report):
        click.echo(line)
    if not no_plot:
        fig = rep.plot(report, Path(plot_path) if plot_path else stem.with_suffix(".run.png"))
        click.echo(f"wrote {out} and {fig}")
    else:
        click.echo(f"wrote {out}")
    lv = report.get("lava")
    if lv and lv.get("agreement") and not (lv["agreement"]["spikes_identical"]
                                           and lv["agreement"]["readout_v_identical"]):
        raise LsnnError(f"Lava and the emulator disagree: {lv['agreement']['first_difference']}")
