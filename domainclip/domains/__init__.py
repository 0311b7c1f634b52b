"""Domain plugins: each mirrors the core layout and is loaded lazily by name."""
