"""Evaluators: turn an architecture into an outcome by training a Keras child; the table
look-up of NAS-Bench-201 is :mod:`rlnas.nb201.evaluator`."""
