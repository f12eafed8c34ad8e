"""Applying work to a bot inside its shard's transaction: the handlers and the paper broker."""
