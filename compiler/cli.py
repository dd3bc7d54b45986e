"""`lsnn compile`: placeholder until the compiler lands (issue 3)."""
import click

from lsnn.errors import LsnnError


@click.command("compile")
@click.argument("model", required=False)
@click.option("--target", default="loihi2", show_default=True)
def compile_cmd(model: str | None, target: str) -> None:
    """Lower MODEL (model.pt) to NetX HDF5 for a hardware target."""
    raise LsnnError("lsnn compile is not implemented yet")
