"""Training engine: loop, optimiser and schedule, precision, distributed, checkpoints."""
