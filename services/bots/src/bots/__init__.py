"""The bots service: bot configuration, grid construction and the read models of trading."""
