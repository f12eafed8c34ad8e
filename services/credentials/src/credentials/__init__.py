"""gridbot credentials service: exchange API keys encrypted at rest, validated against the exchange."""
