"""Search spaces of Keras children: `layers` (macro search) and `nasnet` (cells); the `nb201`
space (the NAS-Bench-201 cell) lives with its table in :mod:`rlnas.nb201`."""
