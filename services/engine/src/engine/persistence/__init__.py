"""Persistence: reads and writes of the bots schema (one statement per batch on PostgreSQL) and the relay."""
