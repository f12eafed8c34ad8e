"""The trading tables shared by the bots service (configuration, read models) and the engine (trading state)."""
