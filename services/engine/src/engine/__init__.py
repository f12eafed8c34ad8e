"""The engine service: drives each running bot's grid state machine (`engine.core`) from prices and fills."""
