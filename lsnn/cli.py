"""The `lsnn` command: one click group; `search` runs the workflow, `compile` and `run` are the
stages' own subcommand modules, `compare` (lsnn.compare) tabulates finished runs.

Commands only parse options and call library functions. Any LsnnError becomes one line on
stderr and exit status 2; nothing heavy is imported until a command runs.
"""
from __future__ import annotations

import signal
import sys
from typing import Any, Optional

import click

from lsnn import __version__
from lsnn.errors import LsnnError
from lsnn.searcher.cli import config_from_options, done_line, search_options


class _Group(click.Group):
    """Turn LsnnError (and Ctrl-C) into one clear line and a non-zero exit."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        # SIGTERM (kill, a job scheduler's stop) unwinds like Ctrl-C, so temporary folders and the
        # Lava worker are cleaned up instead of left behind by an abrupt exit
        signal.signal(signal.SIGTERM, _terminated)
        try:
            return super().invoke(ctx)
        except LsnnError as exc:
            click.echo(f"lsnn: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("lsnn: interrupted", err=True)
            sys.exit(130)


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lsnn")
def main() -> None:
    """Search, compile and run lightweight spiking neural networks (LitE-SNN -> Loihi)."""


@main.command("search")
@search_options
def search_cmd(config_file: Optional[str], resume: bool, no_deploy: bool, **options: Any) -> None:
    """Search a lightweight SNN (LitE-SNN), decode it, retrain it, and save model.pt.

    The default runs the whole pipeline on the embedded digits dataset in a few minutes.
    """
    from lsnn.workflow import search_and_deploy

    cfg = config_from_options(config_file, no_deploy, options)
    result = search_and_deploy(cfg, resume=resume, echo=click.echo)
    if result.model_path is None:
        click.echo(f"genotype: {result.out_dir / 'genotype.json'}")
        return
    click.echo(done_line(result.summary))


def _register() -> None:
    from lsnn.compare.command import compare_cmd
    from lsnn.compiler.cli import compile_cmd
    from lsnn.runtime.cli import run_cmd

    main.add_command(compile_cmd)
    main.add_command(run_cmd)
    main.add_command(compare_cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
