"""`lsnn run`: placeholder until the runtime lands (issue 4)."""
import click

from lsnn.errors import LsnnError


@click.command("run")
@click.argument("net", required=False)
@click.option("--sim", is_flag=True)
def run_cmd(net: str | None, sim: bool) -> None:
    """Run a compiled model.net on Lava's simulator or the integer emulator."""
    raise LsnnError("lsnn run is not implemented yet")
