"""Pick the Korean (default) or English text of a message for the current request."""

from common.context import language_var


def t(ko: str, en: str) -> str:
    """The message in the request's language."""
    return en if language_var.get() == "en" else ko
