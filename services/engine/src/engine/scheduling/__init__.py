"""Scheduling: the loaded bots (registry) and the shards that apply work to them in batches."""
