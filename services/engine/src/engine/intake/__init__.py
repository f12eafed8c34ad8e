"""Intake: price ticks (routed through the registry's ticker index), bus messages, and the price a bot starts at."""
