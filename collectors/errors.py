"""The exceptions of the collectors side (the sidecar and the SDK).

Everything Sidewatch raises on purpose derives from :class:`SidewatchError`; the
monitor extends the same tree in ``monitor/errors.py``::

    SidewatchError
    ├── ConfigError              bad settings, found at start-up
    ├── MissingDependencyError   an optional extra is not installed
    └── (monitor/errors.py)
        ├── InputError           a request's content is wrong (HTTP 422)
        ├── NotFoundError        a model or version is not registered (HTTP 404)
        ├── ConflictError        a registration disagrees with what is stored (HTTP 409)
        ├── AuthError            no or wrong bearer token (HTTP 401)
        ├── ForbiddenError       a token writes a model it is not bound to (HTTP 403)
        ├── PayloadTooLarge      a body, once decompressed, is over its cap (HTTP 413)
        └── CliError             a command failed; carries its exit code

The SDK never raises into the caller's request path: ``Client.record`` drops and
counts instead. Only construction (bad settings) raises.
"""

from __future__ import annotations


class SidewatchError(Exception):
    """Base of every exception Sidewatch raises on purpose."""


class ConfigError(SidewatchError):
    """A setting is missing or invalid; the message names it and what is expected."""


class MissingDependencyError(SidewatchError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed; install it with `pip install 'sidewatch[{extra}]'`"
        )
        self.package = package
        self.extra = extra
