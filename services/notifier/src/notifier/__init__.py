"""gridbot notifier service: per-user notification channels and their deliveries."""
