"""The biomedical literature domain (BIOMEDICA / BMCA-CLIP): PMC articles to figure-caption shards, many tasks."""
