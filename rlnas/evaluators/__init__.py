"""Evaluators: turn an architecture into an outcome (a Keras child, a table look-up)."""
