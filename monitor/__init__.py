"""Sidewatch monitor: the scoring service.

Events come in through ``monitor.api`` (ingest), are kept by ``monitor.store``,
scored per window by ``monitor.score`` and exported by ``monitor.export``. Importing
this package is cheap: the submodules load on use.
"""

__version__ = "0.1.0"
