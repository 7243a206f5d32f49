"""The `t2v` command-line interface (click)."""
