"""`lsnn search` (being built)."""
import click

from lsnn.errors import LsnnError


@click.command("search")
def search_cmd() -> None:
    """Run the LitE-SNN search -> decode -> retrain and write model.pt."""
    raise LsnnError("lsnn search is not implemented yet")
