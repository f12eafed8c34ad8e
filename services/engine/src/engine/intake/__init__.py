"""Intake: price ticks (routed through the ticker index), bus messages, and the price a bot starts at."""
