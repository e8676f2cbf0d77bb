"""Policy: decoded features in, only what may leave the sidecar out.

Applied to every row before it is spooled: an allow-list keeps only the named
features, a deny-list removes features, and redaction drops configured features or
replaces each value with a keyed hash (HMAC-SHA256, truncated), which keeps equal
values equal (so drift on the field still shows) without exposing them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal

RedactMode = Literal["hash", "drop"]


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    """Which features leave the sidecar, and how redacted ones are shown.

    Args:
        allow: If not empty, only these features are kept.
        deny: These features are removed.
        redact: These features are dropped (``mode="drop"``) or hashed.
        mode: ``hash`` (needs ``key``) or ``drop``.
        key: The secret of the keyed hash.
    """

    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    redact: frozenset[str] = frozenset()
    mode: RedactMode = "hash"
    key: bytes = b""

    def __post_init__(self) -> None:
        if self.redact and self.mode == "hash" and len(self.key) < 16:
            raise ValueError("hash redaction needs a key of at least 16 bytes "
                             "(SIDEWATCH_SIDECAR_REDACTION_KEY)")  # fmt: skip

    @property
    def active(self) -> bool:
        """True when the policy changes anything."""
        return bool(self.allow or self.deny or self.redact)

    def apply(self, features: dict[str, Any]) -> dict[str, Any]:
        """The features that may leave, redacted; ``features`` is not changed."""
        if not self.active:
            return features
        kept = {}
        for name, value in features.items():
            if (self.allow and name not in self.allow) or name in self.deny:
                continue
            if name in self.redact:
                if self.mode == "drop":
                    continue
                value = None if value is None else self.hash(value)
            kept[name] = value
        return kept

    def hash(self, value: Any) -> str:
        """The keyed hash of ``value`` as shown in place of it."""
        digest = hmac.new(self.key, repr(value).encode(), hashlib.sha256).hexdigest()
        return f"h:{digest[:24]}"
