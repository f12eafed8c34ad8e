"""Why a batch could not be written."""

from __future__ import annotations


class StaleStateError(Exception):
    """Another writer advanced a bot's engine state since this one loaded it."""


class FencedError(StaleStateError):
    """Another replica claimed partitions of the batch's bots: this replica must not write them any more."""

    def __init__(self, partitions: set[int]) -> None:
        super().__init__(f"partitions {sorted(partitions)} belong to another engine replica now")
        self.partitions = partitions
