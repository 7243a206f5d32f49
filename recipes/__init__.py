"""Dataset recipes: each prepares one dataset and holds typed config functions for each stage."""
