"""The monitor's exceptions, on the tree rooted in ``collectors/errors.py``::

    SidewatchError
    ├── ConfigError              bad settings, found at start-up
    ├── MissingDependencyError   an optional extra is not installed
    ├── InputError               a request's content is wrong (HTTP 422)
    ├── NotFoundError            a model or version is not registered (HTTP 404)
    ├── ConflictError            a registration disagrees with what is stored (HTTP 409)
    ├── AuthError                no or wrong bearer token (HTTP 401)
    ├── ForbiddenError           a token writes a model it is not bound to (HTTP 403)
    ├── PayloadTooLarge          a body, once decompressed, is over its cap (HTTP 413)
    └── CliError                 a command failed; carries its exit code

The API maps each to its status code in one place (``monitor/api/app.py``). Messages
name the field and what was expected, and never echo a feature's value.
"""

from __future__ import annotations

from collectors.errors import ConfigError, MissingDependencyError, SidewatchError

__all__ = [
    "AuthError",
    "CliError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "InputError",
    "MissingDependencyError",
    "NotFoundError",
    "PayloadTooLarge",
    "SidewatchError",
]


class InputError(SidewatchError):
    """The content of a request is invalid.

    Args:
        message: A summary of what is wrong.
        problems: ``(location, what was expected)`` pairs, e.g.
            ``("events[3].features.age", "expected a number")``.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class NotFoundError(SidewatchError):
    """A model, version or reference that the request names is not registered."""


class ConflictError(SidewatchError):
    """A registration disagrees with what is already stored."""


class AuthError(SidewatchError):
    """The request has no bearer token, or an unknown one."""


class ForbiddenError(SidewatchError):
    """The token is valid but not allowed to do this."""


class PayloadTooLarge(SidewatchError):
    """A request body is larger than its cap once decompressed."""


class CliError(SidewatchError):
    """A command-line action failed; ``exit_code`` is what the process returns."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
