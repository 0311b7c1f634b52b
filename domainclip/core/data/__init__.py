"""Streaming data: sample keys, shard writer and reader, mixing, corrupt-sample policy."""
