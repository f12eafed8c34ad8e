"""Live trading: exchange clients with keys from the credentials service, streams, reconciliation."""
