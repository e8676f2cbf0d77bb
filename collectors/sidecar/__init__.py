"""The sidecar: capture beside any model server, without touching it.

Stages, each a module: ``proxy`` (caller bytes to the model and back, a copy kept) or
``tap`` (KServe's payload logger) → ``recorder`` (request metrics, one spool record per
exchange, in the record format of ``collectors.record``) → the spool
(``collectors.spool``) → the shipper, a child process (``shipping``): ``decoder``
(exchanges to events, with ``decode`` and ``policy``) → the forwarder
(``collectors.forward``) → the monitor. ``admin`` serves health and metrics.
"""

from collectors.sidecar.run import Sidecar
from collectors.sidecar.settings import SidecarSettings

__all__ = ["Sidecar", "SidecarSettings"]
