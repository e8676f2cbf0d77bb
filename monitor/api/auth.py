"""Bearer-token access: who is calling, and what they may write.

With no token configured every call is allowed (the monitor then listens on loopback
only). Once tokens exist, every call but ``/livez`` and ``/readyz`` needs one:

- the admin token may do anything;
- an ingest token may only write events and labels of the models it is bound to;
- the scrape token may only read ``/metrics`` (Prometheus);
- ``/docs``, ``/redoc`` and ``/openapi.json`` need the admin token, unless
  ``SIDEWATCH_PUBLIC_DOCS`` keeps them open.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from monitor.errors import AuthError, ForbiddenError
from monitor.settings import MonitorSettings


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as its token identifies it."""

    admin: bool
    models: frozenset[str] | None
    """Models it may write; None means all."""
    scrape: bool = False
    """Whether it may read ``/metrics`` (the admin may too)."""

    def check_writes(self, model: str) -> None:
        """Raises:
        ForbiddenError: The caller may not write this model.
        """
        if self.models is not None and model not in self.models:
            raise ForbiddenError(f"this token may not write model {model!r}")

    def check_ingests(self) -> None:
        """Raises:
        ForbiddenError: The caller's token may not ingest at all (the scrape token).
        """
        if not self.admin and self.models is not None and not self.models:
            raise ForbiddenError("this token may not ingest: use an ingest token")

    def check_admin(self) -> None:
        """Raises:
        ForbiddenError: The caller does not hold the admin token.
        """
        if not self.admin:
            raise ForbiddenError("this call needs the admin token")

    def check_scrape(self) -> None:
        """Raises:
        ForbiddenError: The caller holds neither the scrape token nor the admin token.
        """
        if not (self.admin or self.scrape):
            raise ForbiddenError(
                "reading /metrics needs the scrape token (SIDEWATCH_SCRAPE_TOKEN) or the "
                "admin token"
            )


_EVERYONE = Principal(admin=True, models=None)
_SCRAPER = Principal(admin=False, models=frozenset(), scrape=True)


class Authorizer:
    """Turns an ``Authorization`` header into a :class:`Principal`."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.enabled = settings.auth_enabled
        self._tokens: list[tuple[bytes, Principal]] = []
        if settings.admin_token is not None:
            self._tokens.append((settings.admin_token.get_secret_value().encode(), _EVERYONE))
        for token, models in settings.ingest_tokens.items():
            allowed = None if "*" in models else frozenset(models)
            self._tokens.append((token.encode(), Principal(admin=False, models=allowed)))
        if settings.scrape_token is not None:
            self._tokens.append((settings.scrape_token.get_secret_value().encode(), _SCRAPER))

    def principal(self, authorization: str | None) -> Principal:
        """The caller behind an ``Authorization`` header value.

        Raises:
            AuthError: Tokens are configured and the header holds none of them.
        """
        if not self.enabled:
            return _EVERYONE
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("this call needs a bearer token: Authorization: Bearer <token>")
        given = token.strip().encode()
        found = None
        for known, principal in self._tokens:
            # Compare with every token, in constant time, so timing tells nothing.
            if hmac.compare_digest(known, given):
                found = principal
        if found is None:
            raise AuthError("unknown bearer token")
        return found
