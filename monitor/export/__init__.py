"""Export: window results and ingest counts in, Prometheus metrics out.

Metric names are an API: ``names.py`` defines every one; dashboards and alert rules
use only those.
"""
