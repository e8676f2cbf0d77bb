"""Quarantine: events the monitor would not store in, the same events out for replay.

What a collector captured but could not get stored (the monitor refused it, its model
is not registered yet, the token may not write it, the monitor broke on it, or a spool
record was corrupt) is appended here with its reason instead of being dropped. An
operator lists and inspects it (``sidewatch quarantine list`` / ``show``) and, once the
cause is fixed, replays it (``sidewatch quarantine replay``): what the monitor then
stores leaves the quarantine; what it still refuses comes back with its new reason.

On disk, a directory (mode 0700) of JSON-lines files (mode 0600), one per reason
(``<reason>.jsonl``), each line one event::

    {"at": 1700000000.0, "kind": "predictions", "reason": "unknown_model",
     "detail": "model: model 'x' is not registered ...", "event": {...}}

A record that could not be read as an event (a corrupt spool record) keeps its bytes
in ``"raw"`` (base64) instead of ``"event"``. Every append is fsynced before it returns:
a caller acknowledges its source (the spool) only after that. The directory is bounded
(``max_bytes``): beyond it an append is refused and counted (``dropped``), and the log
says so.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger("sidewatch.quarantine")

_REASON = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SUFFIX = ".jsonl"
_REPLAYING = ".replaying"

ADVICE: dict[str, str] = {
    "unknown_model": "register the model (PUT /v1/models/{name}), then run "
    "`sidewatch quarantine replay`",
    "forbidden": "give the collector's token write access to the model (or use one that "
    "has it), then run `sidewatch quarantine replay`",
    "invalid": "the events break the event contract or the model's features; inspect "
    "them with `sidewatch quarantine show --reason invalid`",
    "too_large": "a single event is larger than the monitor accepts "
    "(SIDEWATCH_MAX_REQUEST_BYTES); raise it, then replay",
    "server_error": "the monitor failed on these events (see its log); replay once fixed",
    "corrupt": "spool records failed their checksum (disk or file damage); their bytes "
    "are kept for inspection, they cannot be replayed",
    "malformed": "spool records of no known kind (a newer or broken writer); their bytes "
    "are kept for inspection, they cannot be replayed",
    "undelivered": "the monitor was unreachable when the collector stopped; replay once it is up",
}
"""What an operator should do about each reason: logged once per reason."""


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One quarantined event."""

    at: float
    kind: str
    reason: str
    detail: str
    event: bytes | None
    """The encoded event, as it would be shipped (None for unreadable records)."""
    raw: bytes | None
    """The bytes of a record that could not be read as an event."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What a replay did."""

    replayed: int
    """Events sent to the monitor again."""
    quarantined: int
    """Events the monitor refused again (back in quarantine with the new reason)."""
    kept: int
    """Events not sent: unreadable records, or the replay ran out of time."""


Deliver = Callable[[str, list[bytes]], list[bytes]]
"""Delivers events of one kind; returns those that got no outcome (time ran out)."""


class Quarantine:
    """A directory of quarantined events.

    Args:
        directory: Where the files live (created, mode 0700).
        max_bytes: Most bytes kept; beyond it :meth:`put` refuses and counts.
    """

    def __init__(self, directory: str | Path, *, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._dropped = 0
        self._advised: set[str] = set()
        self._bytes: int | None = None

    def put(
        self,
        kind: str,
        reason: str,
        detail: str,
        events: Sequence[bytes] = (),
        *,
        raw: Sequence[bytes] = (),
    ) -> int:
        """Append events (encoded) or unreadable records (``raw``) with their reason.

        Returns:
            How many were kept (0 if the quarantine is full: counted in ``dropped``).

        Raises:
            ValueError: ``reason`` is not a short lower-case name.
            OSError: The disk refused the write (full): nothing was kept, and the caller
                must keep its own copy.
        """
        if not _REASON.match(reason):
            raise ValueError(f"a quarantine reason is a short lower-case name, got {reason!r}")
        head = orjson.dumps({"at": time.time(), "kind": kind, "reason": reason,
                             "detail": detail[:2000]})[:-1]  # fmt: skip
        lines = [head + b',"event":' + e + b"}\n" for e in events]
        lines += [head + b',"raw":"' + base64.b64encode(r) + b'"}\n' for r in raw]
        if not lines:
            return 0
        data = b"".join(lines)
        with self._lock:
            if self._on_disk() + len(data) > self._max_bytes:
                self._dropped += len(lines)
                logger.error("the quarantine in %s is full (%d bytes): %d %s events with "
                             "reason %s are lost; replay or remove what it holds",
                             self.directory, self._max_bytes, len(lines), kind, reason)  # fmt: skip
                return 0
            self._append(self.directory / f"{reason}{_SUFFIX}", data)
            self._bytes = self._on_disk() + len(data)
            self._counts[reason] += len(lines)
            first = reason not in self._advised
            self._advised.add(reason)
        if first:
            advice = ADVICE.get(reason, "inspect them with `sidewatch quarantine show`")
            logger.warning("%d %s quarantined in %s (%s): %s", len(lines), kind,
                           self.directory, reason, advice)  # fmt: skip
        return len(lines)

    def counts(self) -> dict[str, int]:
        """Events this process quarantined, by reason."""
        with self._lock:
            return dict(self._counts)

    @property
    def dropped(self) -> int:
        """Events refused because the quarantine was full."""
        with self._lock:
            return self._dropped

    def summary(self) -> dict[str, int]:
        """Events held on disk now, by reason."""
        held: Counter[str] = Counter()
        for path in self._files():
            with open(path, "rb") as f:
                held[_reason_of(path)] += sum(1 for line in f if line.endswith(b"\n"))
        return dict(held)

    def read(self, reason: str | None = None) -> Iterator[Quarantined]:
        """The quarantined events, oldest file first (one reason, or all)."""
        for path in self._files():
            if reason is None or _reason_of(path) == reason:
                yield from _records(path)

    def replay(self, deliver: Deliver, *, reason: str | None = None) -> ReplayResult:
        """Send the quarantined events (of one reason, or all) to the monitor again.

        Each file is moved aside first, so that what the monitor refuses again is
        appended to a fresh file by ``deliver``; the events that got no outcome (time
        ran out) and unreadable records are put back.
        """
        totals = Counter[str]()
        for path in self._files():
            if (reason is not None and _reason_of(path) != reason) or path.name.endswith(
                _REPLAYING
            ):
                continue
            aside = path.with_name(f"{path.name}{_REPLAYING}")
            os.replace(path, aside)
            before = sum(self.counts().values())
            records = list(_records(aside))
            by_kind: dict[str, list[bytes]] = {}
            for r in records:
                if r.event is not None:
                    by_kind.setdefault(r.kind, []).append(r.event)
            left: set[bytes] = set()
            for kind, events in by_kind.items():
                left.update(deliver(kind, events))
            kept = [r for r in records if r.event is None or r.event in left]
            totals["replayed"] += len(records) - len(kept)
            totals["quarantined"] += sum(self.counts().values()) - before
            totals["kept"] += len(kept)
            if kept:
                self._restore(aside, kept)
            else:
                aside.unlink()
        with self._lock:
            self._bytes = None
        return ReplayResult(totals["replayed"], totals["quarantined"], totals["kept"])

    # -- internals ---------------------------------------------------------------------

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        files = [p for p in self.directory.iterdir() if p.name.endswith((_SUFFIX, _REPLAYING))]
        return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))

    def _on_disk(self) -> int:
        if self._bytes is None:
            self._bytes = sum(p.stat().st_size for p in self._files())
        return self._bytes

    def _append(self, path: Path, data: bytes) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # no half line left behind
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)

    def _restore(self, aside: Path, records: list[Quarantined]) -> None:
        lines = [_line(r) for r in records]
        self._append(self.directory / f"{_reason_of(aside)}{_SUFFIX}", b"".join(lines))
        aside.unlink()


def _reason_of(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _records(path: Path) -> Iterator[Quarantined]:
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                continue  # a write cut short by a crash
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            event = doc.get("event")
            raw = doc.get("raw")
            yield Quarantined(
                at=float(doc.get("at", 0.0)),
                kind=str(doc.get("kind", "")),
                reason=str(doc.get("reason", _reason_of(path))),
                detail=str(doc.get("detail", "")),
                event=orjson.dumps(event) if event is not None else None,
                raw=base64.b64decode(raw) if isinstance(raw, str) else None,
            )


def _line(record: Quarantined) -> bytes:
    doc: dict[str, object] = {
        "at": record.at,
        "kind": record.kind,
        "reason": record.reason,
        "detail": record.detail,
    }
    head = orjson.dumps(doc)[:-1]
    if record.event is not None:
        return head + b',"event":' + record.event + b"}\n"
    return head + b',"raw":"' + base64.b64encode(record.raw or b"") + b'"}\n'
