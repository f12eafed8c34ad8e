"""Scheduling: the loaded bots (registry), the units of work, and the shards that apply them in batches."""
