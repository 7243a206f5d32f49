"""`t2v tokenizer …`: train, reconstruct, encode."""
import click


@click.group()
def tokenizer() -> None:
    """Train the video tokenizer, reconstruct videos with it, encode datasets to token shards."""
