"""Dataset adapters of the math domain (one class per file)."""
