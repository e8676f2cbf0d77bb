"""Spool: encoded events in, the same events out, surviving a crash in between.

A bounded, append-only log on local disk between capture and shipping. Records go
into segment files (``<seq>.seg``) framed as::

    magic (2 bytes) | length (4 bytes, big-endian) | CRC-32 of payload (4) | payload

The reader takes records in order and acknowledges them once the monitor has them;
the acknowledged position is kept in ``cursor``, two checksummed slots overwritten in
place (so that acknowledging needs no new disk space and works on a full disk), and
segments entirely behind it are deleted; once everything written is acknowledged, the
writer starts a new segment and the delivered one is deleted, so delivered data does
not linger on disk. What ``append`` accepted is in the file before it returns, so it
survives ``kill -9`` of the process; ``sync="always"`` or ``"interval"`` also fsyncs
for power loss. A corrupt record is skipped and the reader resynchronises at the next
intact one; the skipped bytes go to ``on_corrupt`` (the forwarder quarantines them)
and are counted. A torn tail of the newest segment (a write cut by power loss) is
truncated on open. While the disk is full, records are held in memory (bounded) and
written once it takes them again. A full spool, or a full disk beyond that hold, makes
``append`` refuse and count: capture is shed, the host's traffic never fails. Files
are created mode 0600 in a directory of mode 0700: they hold what the model was sent.
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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import BinaryIO, Literal

logger = logging.getLogger("sidewatch.spool")

_MAGIC = b"\xa5\x5a"
_HEADER = struct.Struct(">2sII")
MAX_RECORD_BYTES = 16 * 1024 * 1024
_SLOT = struct.Struct(">QQQ")
"""A cursor slot: write sequence, segment, offset; followed by its CRC-32 (4 bytes) and
4 bytes of padding, 32 bytes in all."""
_SLOT_BYTES = 32

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
    """Records refused because the disk refused the write and the memory hold was full."""
    corrupt_skipped: int
    """Torn or corrupt records found on open or while reading, and skipped."""
    bytes: int
    """Bytes on disk not yet acknowledged."""
    held_bytes: int = 0
    """Bytes held in memory because the disk refused them (written once it takes them)."""


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
        hold_bytes: Most bytes held in memory while the disk refuses writes.
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
        hold_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.directory = Path(directory)
        self._reader = reader
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.on_corrupt: Callable[[bytes], None] | None = None
        """Called (reading) with the bytes of each corrupt stretch that was skipped."""
        self._cursor_fd: int | None = None
        self._cursor_seq = 0
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._sync = sync
        self._sync_interval = sync_interval_seconds
        self._last_sync = time.monotonic()
        self._lock = threading.Lock()
        self._counts = {"appended": 0, "shed_full": 0, "shed_disk": 0, "corrupt_skipped": 0}
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._hold_max = hold_bytes
        self._acked = self._load_cursor()
        self._read = self._acked
        self._file: FileIO | None = None
        clean = True
        if not reader:
            clean = self._repair_tail()
        segments = self._segments()
        self._write_seq = segments[-1] if segments else max(self._acked.segment, 1)
        self._offset = 0
        if not reader:
            if not clean:  # appends go to a new segment, after the damaged one
                self._write_seq += 1
            self._file = self._open_segment(self._write_seq)
        self._bytes = self._pending_bytes()

    # -- writing -----------------------------------------------------------------------

    def append(self, payload: bytes) -> bool:
        """Add a record; returns False (and counts why) if it was shed.

        While the disk refuses writes (full), records are held in memory, in order, up
        to ``hold_bytes``, and written as soon as it takes them again (the next append,
        or :meth:`sync`); they survive the disk filling up, not a crash meanwhile.

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
            if self._bytes + self._held_bytes + size > self._max_bytes:
                self._counts["shed_full"] += 1
                return False
            if (self._held and not self._write_held()) or not self._write(record):
                if self._held_bytes + size > self._hold_max:
                    self._counts["shed_disk"] += 1
                    return False
                self._held.append(record)
                self._held_bytes += size
            self._counts["appended"] += 1
        return True

    def _write(self, record: bytes) -> bool:
        """Under the lock: one record to the active segment; False if the disk is full."""
        assert self._file is not None
        size = len(record)
        try:
            if self._offset + size > self._segment_bytes and self._offset > 0:
                self._roll()
            # One write(2), unbuffered: in the OS when it returns, so it survives
            # kill -9 of this process.
            if self._file.write(record) != size:
                raise OSError(errno.ENOSPC, "short write")
            if self._sync != "none":
                self._maybe_sync()
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            self._undo_partial_write()
            return False
        self._offset += size
        self._bytes += size
        return True

    def _write_held(self) -> bool:
        """Under the lock: write the records held in memory; False if the disk is full."""
        while self._held:
            if not self._write(self._held[0]):
                return False
            self._held_bytes -= len(self._held.popleft())
        return True

    def _roll(self) -> None:
        assert self._file is not None
        self._sync_now()
        new = self._open_segment(self._write_seq + 1)  # first: a full disk changes nothing
        self._file.close()
        self._write_seq += 1
        self._file = new

    def _open_segment(self, seq: int) -> FileIO:
        fd = os.open(self._path(seq), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        f = FileIO(fd, "ab")
        self._offset = os.fstat(fd).st_size
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
                f.seek(position.offset)
                at_end = (limit is not None and position.offset >= limit) or not f.read(1)
            if len(records) >= max_records or size >= max_bytes:
                break
            active = position.segment >= write_seq
            if not at_end:
                # Corrupt, or (in the active segment) a record still being written:
                # corrupt only if an intact record follows, or the segment is done.
                resume, skipped = _next_intact(path, position.offset)
                if (
                    active
                    and resume >= path.stat().st_size
                    and not any(s > position.segment for s in self._segments())
                ):
                    break
                corrupt += 1
                logger.warning("corrupt spool record in %s at %d: %d bytes skipped",
                               path.name, position.offset, len(skipped))  # fmt: skip
                if self.on_corrupt is not None:
                    self.on_corrupt(skipped)
                position = Position(position.segment, resume)
                continue
            if active:
                break  # the active segment: what follows may still be being written
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
        """Everything before ``position`` was delivered: forget it.

        Needs no new disk space: it works on a full disk, and frees space.
        """
        with self._lock:
            self._acked = position
            for seq in self._segments():
                if seq < position.segment:
                    self._path(seq).unlink(missing_ok=True)
            self._save_cursor(position)
            self._drop_delivered()
            self._bytes = self._pending_bytes()

    def _drop_delivered(self) -> None:
        """Writer side, under the lock: once all that was written is acknowledged, start
        a new segment and delete the delivered one (delivered data does not linger)."""
        if self._file is None or self._offset == 0:
            return
        if self._acked != Position(self._write_seq, self._offset):
            return
        done, offset = self._write_seq, self._offset
        try:
            new = self._open_segment(done + 1)
        except OSError:  # no room for a new file now: the next acknowledgement tries again
            self._offset = offset
            return
        self._file.close()
        self._write_seq += 1
        self._file = new
        self._path(done).unlink(missing_ok=True)

    def sync(self) -> None:
        """Flush the active segment to disk now, without holding up ``append``.

        For a writer opened with ``sync="none"`` whose owner syncs from its own thread
        (the sidecar does, so that no request waits for the disk).
        """
        with self._lock:
            if self._file is None:
                return
            self._write_held()
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
            self._drop_delivered()

    def stats(self) -> SpoolStats:
        """A snapshot of the counters."""
        with self._lock:
            return SpoolStats(**self._counts, bytes=self._bytes, held_bytes=self._held_bytes)

    def close(self) -> None:
        """Flush and close the active segment."""
        with self._lock:
            if self._file is None:
                return
            if not self._write_held():
                self._counts["shed_disk"] += len(self._held)
                logger.error("the disk is still full: %d records held in memory are lost",
                             len(self._held))  # fmt: skip
            if self._sync != "none":
                self._sync_now()
            self._file.close()
            self._file = None
        if self._cursor_fd is not None:
            os.close(self._cursor_fd)
            self._cursor_fd = None

    # -- recovery and bookkeeping ------------------------------------------------------

    def _repair_tail(self) -> bool:
        """Truncate a torn tail of the newest segment; False if it is damaged before
        its end (the reader resynchronises there; appends go to a new segment)."""
        segments = self._segments()
        if not segments:
            return True
        path = self._path(segments[-1])
        with open(path, "rb") as f:
            good = 0
            while _read_record(f) is not None:
                good = f.tell()
        size = path.stat().st_size
        if good == size:
            return True
        resume, _ = _next_intact(path, good)
        if resume < size:
            logger.warning("corrupt spool record in %s at %d: the reader will skip it",
                           path.name, good)  # fmt: skip
            return False
        self._counts["corrupt_skipped"] += 1
        logger.warning("torn spool tail in %s: %d bytes dropped", path.name, size - good)
        os.truncate(path, good)
        return True

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
            data = (self.directory / "cursor").read_bytes()
        except OSError:
            data = b""
        best: tuple[int, Position] | None = None
        if len(data) == 2 * _SLOT_BYTES:
            for i in (0, 1):
                slot = data[i * _SLOT_BYTES : (i + 1) * _SLOT_BYTES]
                body, crc = slot[: _SLOT.size], slot[_SLOT.size : _SLOT.size + 4]
                if zlib.crc32(body).to_bytes(4, "big") == crc:
                    seq, segment, offset = _SLOT.unpack(body)
                    if best is None or seq > best[0]:
                        best = (seq, Position(segment, offset))
        else:
            with contextlib.suppress(ValueError):  # the text format of earlier versions
                segment, offset = map(int, data.decode().split())
                best = (0, Position(segment, offset))
        if best is None:
            segments = self._segments()
            return Position(segments[0] if segments else 1, 0)
        self._cursor_seq = max(self._cursor_seq, best[0])
        return best[1]

    def _save_cursor(self, position: Position) -> None:
        # Two slots overwritten in place, alternately: no new block is needed, so an
        # acknowledgement works on a full disk; a torn slot fails its CRC and the other
        # one (one acknowledgement older: a redelivery, stored once) is read.
        self._cursor_seq += 1
        body = _SLOT.pack(self._cursor_seq, position.segment, position.offset)
        slot = body + zlib.crc32(body).to_bytes(4, "big") + bytes(4)
        where = (self._cursor_seq % 2) * _SLOT_BYTES
        if self._cursor_fd is None:
            path = self.directory / "cursor"
            if not path.exists() or path.stat().st_size != 2 * _SLOT_BYTES:
                # Written whole once (real blocks, not a hole), then only overwritten.
                whole = bytearray(2 * _SLOT_BYTES)
                whole[where : where + _SLOT_BYTES] = slot
                tmp = self.directory / "cursor.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, whole)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            self._cursor_fd = os.open(path, os.O_RDWR)
        os.pwrite(self._cursor_fd, slot, where)


def _next_intact(path: Path, offset: int) -> tuple[int, bytes]:
    """Where the next intact record after a corrupt one at ``offset`` starts (the
    file's end if none does), and the bytes skipped to get there."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    found = data.find(_MAGIC, 1)
    while found != -1 and not _intact_at(memoryview(data)[found:]):
        found = data.find(_MAGIC, found + 1)
    end = len(data) if found == -1 else found
    return offset + end, data[:end]


def _intact_at(data: memoryview) -> bool:
    """Whether an intact record starts at the beginning of ``data``."""
    if len(data) < _HEADER.size:
        return False
    magic, length, crc = _HEADER.unpack(data[: _HEADER.size])
    if magic != _MAGIC or length > MAX_RECORD_BYTES or len(data) < _HEADER.size + length:
        return False
    return bool(zlib.crc32(data[_HEADER.size : _HEADER.size + length]) == crc)


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
