"""The spool keeps what it accepted through crashes, and sheds rather than fails."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collectors.spool import Position, Spool


def records(n: int, start: int = 0) -> list[bytes]:
    return [
        f'{{"event_id":"e{i}","pad":"{"x" * (i % 50)}"}}'.encode() for i in range(start, start + n)
    ]


def drain(spool: Spool) -> list[bytes]:
    out: list[bytes] = []
    while True:
        batch, position = spool.read(100)
        if not batch:
            return out
        out += batch
        spool.ack(position)


def test_records_come_out_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096, sync="none")
    data = records(500)
    assert all(spool.append(r) for r in data)
    assert len(list(tmp_path.glob("*.seg"))) > 5
    assert drain(spool) == data
    assert spool.stats().bytes == 0
    assert len(list(tmp_path.glob("*.seg"))) == 1, "acknowledged segments are deleted"
    spool.close()


def test_unacknowledged_records_are_read_again_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096)
    data = records(300)
    for r in data:
        spool.append(r)
    first, position = spool.read(100)
    spool.ack(position)
    spool.read(100)  # read but never acknowledged: the monitor did not confirm
    spool.close()
    again = Spool(tmp_path, segment_bytes=4096)
    assert first == data[:100]
    assert drain(again) == data[100:]
    again.close()


def test_rewind_rereads_after_a_failed_delivery(tmp_path: Path) -> None:
    spool = Spool(tmp_path, sync="none")
    for r in records(10):
        spool.append(r)
    batch, _ = spool.read(5)
    spool.rewind()
    assert spool.read(5)[0] == batch
    spool.close()


WRITER = textwrap.dedent(
    """
    import sys
    from collectors.spool import Spool
    spool = Spool(sys.argv[1], segment_bytes=64 * 1024, sync="none")
    i = 0
    while True:
        if spool.append(b'{"event_id":"e%d"}' % i):
            sys.stdout.write(f"{i}\\n")
            sys.stdout.flush()
        i += 1
    """
)


def test_what_was_accepted_survives_kill_9(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    accepted = []
    for line in writer.stdout:
        accepted.append(int(line))
        if len(accepted) == 20_000:
            writer.send_signal(signal.SIGKILL)
            break
    writer.wait()
    writer.stdout.close()
    spool = Spool(tmp_path, segment_bytes=64 * 1024)
    got = [int(json.loads(r)["event_id"][1:]) for r in drain(spool)]
    # Everything reported accepted is there, in order, once (the writer may have
    # appended a few more after its last report).
    assert got[: len(accepted)] == accepted
    assert got == list(range(len(got)))
    assert spool.stats().corrupt_skipped == 0
    spool.close()


def test_a_torn_tail_is_dropped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, sync="none")
    data = records(20)
    for r in data:
        spool.append(r)
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    whole = segment.read_bytes()
    with open(segment, "ab") as f:  # a crash in the middle of a write
        f.write(whole[:7])
    reopened = Spool(tmp_path, sync="none")
    assert reopened.stats().corrupt_skipped == 1
    assert reopened.append(b"after")
    assert drain(reopened) == [*data, b"after"]
    reopened.close()


def test_a_corrupt_record_skips_its_segment_not_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=2048, sync="none")
    data = records(200)
    for r in data:
        spool.append(r)
    spool.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    raw = bytearray(first.read_bytes())
    raw[200] ^= 0xFF  # a flipped bit inside the first segment
    first.write_bytes(bytes(raw))
    reopened = Spool(tmp_path, segment_bytes=2048, sync="none")
    got = drain(reopened)
    assert reopened.stats().corrupt_skipped == 1
    assert got[0] == data[0] and got[-1] == data[-1]
    assert len(got) < len(data) and got == [r for r in data if r in set(got)]
    reopened.close()


def test_a_full_spool_sheds_and_counts(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=2000, sync="none")
    results = [spool.append(r) for r in records(100)]
    assert results.count(True) > 0 and results.count(False) > 0
    stats = spool.stats()
    assert stats.shed_full == results.count(False) and stats.bytes <= 2000
    drain(spool)
    assert spool.append(b"room again")
    spool.close()


def test_a_full_disk_sheds_without_raising_or_tearing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path, sync="none")
    assert spool.append(b"before")
    real_write = spool._file.write

    def full_disk(data: bytes) -> int:
        real_write(data[:5])  # part of it landed before the disk filled
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(spool._file, "write", full_disk)
    assert spool.append(b"lost") is False
    assert spool.stats().shed_disk == 1
    monkeypatch.undo()
    assert spool.append(b"after")
    assert drain(spool) == [b"before", b"after"]
    spool.close()


def test_ack_position_survives_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, sync="none")
    for r in records(10):
        spool.append(r)
    _, position = spool.read(4)
    spool.ack(position)
    spool.close()
    assert (tmp_path / "cursor").read_text().split() == [
        str(position.segment),
        str(position.offset),
    ]
    assert isinstance(position, Position)
    reopened = Spool(tmp_path, sync="none")
    assert len(drain(reopened)) == 6
    reopened.close()


def test_a_reader_beside_a_writer_sees_whole_records_and_frees_space(tmp_path: Path) -> None:
    writer = Spool(tmp_path, segment_bytes=200, sync="none")
    reader = Spool(tmp_path, reader=True)
    with pytest.raises(ValueError, match="reading only"):
        reader.append(b"x")
    for i in range(30):
        assert writer.append(b"record-%02d" % i)
    # A record half written by the writer is not read yet, and not counted as corrupt.
    newest = sorted(tmp_path.glob("*.seg"))[-1]
    with open(newest, "ab") as f:
        f.write(b"\xa5\x5a\x00\x00\x00\x40")
    records, position = reader.read(100)
    assert records == [b"record-%02d" % i for i in range(30)]
    assert reader.stats().corrupt_skipped == 0
    before = writer.stats().bytes
    reader.ack(position)
    writer.refresh()
    assert writer.stats().bytes < before
    assert len(list(tmp_path.glob("*.seg"))) == 1  # delivered segments deleted
    writer.close()
    reader.close()
