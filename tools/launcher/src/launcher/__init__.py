"""Composition root: the only package that knows every service (services never import each other)."""
