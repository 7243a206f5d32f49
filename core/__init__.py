"""The ground floor: run machinery shared by the tokenizer and the generator (atomic writes, distributed setup,
checkpoint directories, resumable state, the run log, the run directory's lock, non-finite steps, the learning-rate
schedule, precision). It imports nothing of the project."""
