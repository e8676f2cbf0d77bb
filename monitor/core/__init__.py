"""Core: the types that the store, scoring, the API and export all share.

The bottom layer (see ``docs/architecture.md``): it imports nothing from the rest of
``monitor`` but :mod:`monitor.errors`. In it:

- :mod:`monitor.core.windows`: :class:`~monitor.core.windows.Window`, the window kinds,
  splits (segment, variant, stage, sensitive group), and the
  :class:`~monitor.core.windows.Marker` that ingest calls.
- :mod:`monitor.core.profile`: mergeable feature profiles (ingest builds them, the
  store merges and keeps them, scoring reads them).
- :mod:`monitor.core.latency`: the constant-memory latency histogram.
- :mod:`monitor.core.records`: :class:`~monitor.core.records.WindowRecord`, a window
  result as the store keeps it (its scores as JSON documents), so that the store needs
  nothing from scoring.
- :mod:`monitor.core.prediction_results`:
  :class:`~monitor.core.prediction_results.PredictionResultRecord`, what a part keeps
  about one prediction (an anomaly flag, an explanation) as the store keeps it.
"""
