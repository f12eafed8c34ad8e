"""The engine service: drives each running bot's grid state machine (`gridcore`) from prices and fills."""
