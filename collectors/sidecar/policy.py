"""Policy: decoded features in, only what may leave the sidecar out.

Applied to every row before it is spooled: an allow-list keeps only the named
features, a deny-list removes features, and redaction drops configured features or
replaces each value with a keyed hash (HMAC-SHA256, truncated), which keeps equal
values equal (so drift on the field still shows) without exposing them.

A name matches a list if it, or the name the monitor will show for it
(:func:`clean_name`: ``credit card`` is shown as ``credit_card``), is on the list as
written or as cleaned: a list cannot be bypassed by spelling a name another way that
cleans to the same.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from collectors.contract import NAME_PATTERN

RedactMode = Literal["hash", "drop"]

_NAME = re.compile(NAME_PATTERN)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


@functools.lru_cache(maxsize=4096)
def clean_name(name: str) -> str:
    """The feature name as the monitor shows it: valid for the event contract
    (``mean radius`` → ``mean_radius``, ``1st`` → ``_1st``, at most 128 characters)."""
    if _NAME.match(name) and len(name) <= 128:
        return name
    fixed = _NAME_BAD.sub("_", name)[:128] or "_"
    if not _NAME.match(fixed):
        fixed = f"_{fixed}"[:128]
    return fixed


def _both(names: frozenset[str]) -> frozenset[str]:
    return names | {clean_name(n) for n in names}


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
    _allow: frozenset[str] = field(init=False, repr=False, compare=False)
    _deny: frozenset[str] = field(init=False, repr=False, compare=False)
    _redact: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.redact and self.mode == "hash" and len(self.key) < 16:
            raise ValueError("hash redaction needs a key of at least 16 bytes "
                             "(SIDEWATCH_SIDECAR_REDACTION_KEY)")  # fmt: skip
        # The lists as written and as cleaned, so both spellings of a name match.
        object.__setattr__(self, "_allow", _both(self.allow))
        object.__setattr__(self, "_deny", _both(self.deny))
        object.__setattr__(self, "_redact", _both(self.redact))

    @property
    def active(self) -> bool:
        """True when the policy changes anything."""
        return bool(self.allow or self.deny or self.redact)

    def apply(self, features: dict[str, Any]) -> dict[str, Any]:
        """The features that may leave, redacted; ``features`` is not changed."""
        if not self.active:
            return features
        allow, deny, redact = self._allow, self._deny, self._redact
        kept = {}
        for name, value in features.items():
            shown = clean_name(name) if isinstance(name, str) else name
            if (allow and name not in allow and shown not in allow) or (
                name in deny or shown in deny
            ):
                continue
            if name in redact or shown in redact:
                if self.mode == "drop":
                    continue
                value = None if value is None else self.hash(value)
            kept[name] = value
        return kept

    def hash(self, value: Any) -> str:
        """The keyed hash of ``value`` as shown in place of it."""
        digest = hmac.new(self.key, repr(value).encode(), hashlib.sha256).hexdigest()
        return f"h:{digest[:24]}"
