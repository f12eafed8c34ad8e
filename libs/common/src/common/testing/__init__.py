"""Test support shared by every package's tests: real infrastructure, isolated per run."""
