"""Exchange market-data WebSocket clients (raw `websockets`, one connection per exchange)."""
