"""`t2v data …`: dataset commands (filled in by the data work)."""
import click


@click.group()
def data() -> None:
    """Make and check datasets."""
