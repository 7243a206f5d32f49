"""The `shapes` synthetic dataset (../shared/SHAPES.md): generation, configs for each stage."""
