"""Message contracts shared by every service (defined once here, never copied)."""

from common.contracts.envelope import Envelope

__all__ = ["Envelope"]
