"""Text → video generator: caption tokenizer, transformer, sampling (see the generator issue)."""
