"""The `lsnn` command: one click group; each stage registers its own subcommand module.

Commands only parse options and call library functions. Any LsnnError becomes one line on
stderr and exit status 2; nothing heavy is imported until a command runs.
"""
from __future__ import annotations

import sys

import click

from lsnn import __version__
from lsnn.errors import LsnnError


class _Group(click.Group):
    """Turn LsnnError (and Ctrl-C) into one clear line and a non-zero exit."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LsnnError as exc:
            click.echo(f"lsnn: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("lsnn: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lsnn")
def main() -> None:
    """Search, compile and run lightweight spiking neural networks (LitE-SNN -> Loihi)."""


def _register() -> None:
    from lsnn.compiler.cli import compile_cmd
    from lsnn.runtime.cli import run_cmd
    from lsnn.searcher.cli import search_cmd

    main.add_command(search_cmd)
    main.add_command(compile_cmd)
    main.add_command(run_cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
