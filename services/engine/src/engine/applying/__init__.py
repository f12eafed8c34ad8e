"""Applying work to a bot inside its shard's transaction: handlers, the step collecting writes, the paper
broker, outgoing messages and the grid-level read model."""
