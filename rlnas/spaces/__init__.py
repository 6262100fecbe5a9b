"""Search spaces: `layers` (macro search), `nb201` (NAS-Bench-201 cell), `nasnet` (cells)."""
