"""gridbot market data: exchange streams to RabbitMQ price ticks, Redis prices and candles, and a REST API."""
