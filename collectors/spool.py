"""Spool: encoded events in, the same events out, surviving a crash in between.

A bounded, append-only log on local disk between capture and shipping. Records go
into segment files (``<seq>.seg``) framed as::

    magic (2 bytes) | length (4 bytes, big-endian) | CRC-32 of payload (4) | payload

The reader takes records in order and acknowledges them once the monitor has them;
the acknowledged position is kept in ``cursor`` (written atomically), and segments
entirely behind it are deleted. What ``append`` accepted is in the file before it
returns, so it survives ``kill -9`` of the process; ``sync="always"`` or
``"interval"`` also fsyncs for power loss. On open, a torn or corrupt record is
skipped and counted (the tail of the newest segment is truncated), never fatal. A
full spool or a full disk makes ``append`` refuse and count: capture is shed, the
host's traffic never fails.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import BinaryIO, Literal

logger = logging.getLogger("sidewatch.spool")

_MAGIC = b"\xa5\x5a"
_HEADER = struct.Struct(">2sII")
MAX_RECORD_BYTES = 16 * 1024 * 1024

Sync = Literal["none", "interval", "always"]


@dataclass(frozen=True, slots=True)
class Position:
    """A place in the spool: a segment and a byte offset in it."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """Counters and gauges of a spool."""

    appended: int
    shed_full: int
    """Records refused because the spool was at its size limit."""
    shed_disk: int
    """Records refused because the disk refused the write."""
    corrupt_skipped: int
    """Torn or corrupt records found on open or while reading, and skipped."""
    bytes: int
    """Bytes on disk not yet acknowledged."""


class Spool:
    """A durable FIFO of byte records in a directory.

    Args:
        directory: Where segments live (created if missing).
        max_bytes: Most unacknowledged bytes kept; beyond it ``append`` sheds.
        segment_bytes: Size at which a new segment is started.
        sync: ``none`` (the OS page cache; survives a process crash), ``interval``
            (fsync at most every ``sync_interval_seconds``) or ``always``.
        sync_interval_seconds: See ``sync``.
        reader: Open for reading only, beside a writer in another process (the
            sidecar ships from a child process): this side reads, acknowledges and
            deletes delivered segments; the writer appends and calls :meth:`refresh`
            to see what was acknowledged.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        segment_bytes: int = 8 * 1024 * 1024,
        sync: Sync = "interval",
        sync_interval_seconds: float = 1.0,
        reader: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self._reader = reader
        self.directory.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._sync = sync
        self._sync_interval = sync_interval_seconds
        self._last_sync = time.monotonic()
        self._lock = threading.Lock()
        self._counts = {"appended": 0, "shed_full": 0, "shed_disk": 0, "corrupt_skipped": 0}
        self._acked = self._load_cursor()
        self._read = self._acked
        self._file: FileIO | None = None
        if not reader:
            self._repair_tail()
        segments = self._segments()
        self._write_seq = segments[-1] if segments else max(self._acked.segment, 1)
        self._offset = 0
        if not reader:
            self._file = self._open_segment(self._write_seq)
        self._bytes = self._pending_bytes()

    # -- writing -----------------------------------------------------------------------

    def append(self, payload: bytes) -> bool:
        """Add a record; returns False (and counts why) if it was shed.

        Raises:
            ValueError: The record is larger than :data:`MAX_RECORD_BYTES`, or this spool
                was opened for reading only.
        """
        if len(payload) > MAX_RECORD_BYTES:
            raise ValueError(f"a spool record is at most {MAX_RECORD_BYTES} bytes")
        record = _HEADER.pack(_MAGIC, len(payload), zlib.crc32(payload)) + payload
        size = len(record)
        if self._file is None:
            raise ValueError("this spool was opened for reading only")
        with self._lock:
            if self._bytes + size > self._max_bytes:
                self._counts["shed_full"] += 1
                return False
            if self._offset + size > self._segment_bytes and self._offset > 0:
                self._roll()
            try:
                # One write(2), unbuffered: in the OS when it returns, so it survives
                # kill -9 of this process.
                if self._file.write(record) != size:
                    raise OSError(errno.ENOSPC, "short write")
                if self._sync != "none":
                    self._maybe_sync()
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise
                self._counts["shed_disk"] += 1
                self._undo_partial_write()
                return False
            self._offset += size
            self._bytes += size
            self._counts["appended"] += 1
        return True

    def _roll(self) -> None:
        assert self._file is not None
        self._sync_now()
        self._file.close()
        self._write_seq += 1
        self._file = self._open_segment(self._write_seq)

    def _open_segment(self, seq: int) -> FileIO:
        f = FileIO(self._path(seq), "ab")
        self._offset = os.fstat(f.fileno()).st_size
        return f

    def _maybe_sync(self) -> None:
        if self._sync == "always" or (
            self._sync == "interval" and time.monotonic() - self._last_sync >= self._sync_interval
        ):
            self._sync_now()

    def _sync_now(self) -> None:
        assert self._file is not None
        os.fsync(self._file.fileno())
        self._last_sync = time.monotonic()

    def _undo_partial_write(self) -> None:
        # A write that failed half way must not leave a torn record mid-file.
        try:
            path = self._path(self._write_seq)
            if os.path.getsize(path) != self._offset:
                os.truncate(path, self._offset)
        except OSError:
            logger.exception("could not trim a failed spool write")

    # -- reading -----------------------------------------------------------------------

    def read(
        self, max_records: int, max_bytes: int = 8 * 1024 * 1024
    ) -> tuple[list[bytes], Position]:
        """Up to ``max_records`` records after the last read; and the position after them.

        Reading does not acknowledge: pass the position to :meth:`ack` once the records
        are delivered, or call :meth:`rewind` to read them again after a failure.
        """
        # Only the writer's position is taken under the lock: the files are read without
        # it, so a reader never holds up ``append`` (called on the proxy's event loop).
        with self._lock:
            if self._file is None:  # the writer is another process: read what is whole
                segments = self._segments()
                write_seq, write_end = (segments[-1] if segments else self._acked.segment), None
            else:
                write_seq, write_end = self._write_seq, self._offset
            position = self._read
        records: list[bytes] = []
        size = 0
        corrupt = 0
        while len(records) < max_records and size < max_bytes:
            path = self._path(position.segment)
            if not path.exists():
                later = [seq for seq in self._segments() if seq > position.segment]
                if not later or later[0] > write_seq:
                    break
                position = Position(later[0], 0)
                continue
            limit = write_end if position.segment == write_seq else None
            with open(path, "rb") as f:
                f.seek(position.offset)
                while len(records) < max_records and size < max_bytes:
                    if limit is not None and f.tell() >= limit:
                        break
                    payload = _read_record(f)
                    if payload is None:
                        break
                    records.append(payload)
                    size += len(payload)
                    position = Position(position.segment, f.tell())
                at_end = f.tell() == position.offset and not f.read(1)
            if len(records) >= max_records or size >= max_bytes:
                break
            if position.segment >= write_seq:
                break
            if not at_end:
                # Corrupt: skip the rest of the segment rather than guess at a frame.
                corrupt += 1
                logger.warning("corrupt spool record in %s at %d: rest of the segment "
                               "skipped", path.name, position.offset)  # fmt: skip
            position = Position(position.segment + 1, 0)
        with self._lock:
            self._read = position
            self._counts["corrupt_skipped"] += corrupt
        return records, position

    def rewind(self) -> None:
        """Read again from the last acknowledged position (after a failed delivery)."""
        with self._lock:
            self._read = self._acked

    def ack(self, position: Position) -> None:
        """Everything before ``position`` was delivered: forget it."""
        with self._lock:
            self._acked = position
            self._save_cursor(position)
            for seq in self._segments():
                if seq < position.segment:
                    self._path(seq).unlink(missing_ok=True)
            self._bytes = self._pending_bytes()

    def sync(self) -> None:
        """Flush the active segment to disk now, without holding up ``append``.

        For a writer opened with ``sync="none"`` whose owner syncs from its own thread
        (the sidecar does, so that no request waits for the disk).
        """
        with self._lock:
            if self._file is None:
                return
            fd = os.dup(self._file.fileno())
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def refresh(self) -> None:
        """Re-read what a reader in another process acknowledged (the writer's side).

        The directory is read without the lock, so that ``append`` (on the proxy's event
        loop) never waits on it; the active segment's size is the writer's own count.
        """
        acked = self._load_cursor()
        with self._lock:
            write_seq, offset = self._write_seq, self._offset
        total = 0
        for seq in self._segments():
            if acked.segment <= seq < write_seq:
                with contextlib.suppress(FileNotFoundError):  # deleted by the reader
                    size = self._path(seq).stat().st_size
                    total += size - (acked.offset if seq == acked.segment else 0)
        if acked.segment <= write_seq:
            total += offset - (acked.offset if write_seq == acked.segment else 0)
        with self._lock:
            grown = self._offset - offset if self._write_seq == write_seq else 0
            self._acked = acked
            self._bytes = max(total, 0) + grown

    def stats(self) -> SpoolStats:
        """A snapshot of the counters."""
        with self._lock:
            return SpoolStats(**self._counts, bytes=self._bytes)

    def close(self) -> None:
        """Flush and close the active segment."""
        with self._lock:
            if self._file is None:
                return
            if self._sync != "none":
                self._sync_now()
            self._file.close()

    # -- recovery and bookkeeping ------------------------------------------------------

    def _repair_tail(self) -> None:
        segments = self._segments()
        if not segments:
            return
        newest = segments[-1]
        good = self._last_good_offset(newest)
        size = self._path(newest).stat().st_size
        if good < size:
            self._counts["corrupt_skipped"] += 1
            logger.warning("torn spool tail in %s: %d bytes dropped", self._path(newest).name,
                           size - good)  # fmt: skip
            os.truncate(self._path(newest), good)

    def _last_good_offset(self, seq: int) -> int:
        with open(self._path(seq), "rb") as f:
            offset = 0
            while _read_record(f) is not None:
                offset = f.tell()
            return offset

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())

    def _path(self, seq: int) -> Path:
        return self.directory / f"{seq:012d}.seg"

    def _pending_bytes(self) -> int:
        total = 0
        for seq in self._segments():
            if seq >= self._acked.segment:
                size = self._path(seq).stat().st_size
                total += size - (self._acked.offset if seq == self._acked.segment else 0)
        return max(total, 0)

    def _load_cursor(self) -> Position:
        try:
            segment, offset = (self.directory / "cursor").read_text().split()
            return Position(int(segment), int(offset))
        except (OSError, ValueError):
            segments = self._segments()
            return Position(segments[0] if segments else 1, 0)

    def _save_cursor(self, position: Position) -> None:
        tmp = self.directory / "cursor.tmp"
        tmp.write_text(f"{position.segment} {position.offset}\n")
        os.replace(tmp, self.directory / "cursor")


def _read_record(f: BinaryIO) -> bytes | None:
    """The next whole, intact record in ``f``, or None (end, torn or corrupt)."""
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    magic, length, crc = _HEADER.unpack(header)
    if magic != _MAGIC or length > MAX_RECORD_BYTES:
        return None
    payload = f.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    return payload
