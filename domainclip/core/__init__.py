"""The shared contrastive core. Never imports a domain."""
