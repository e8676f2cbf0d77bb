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
from tests.conftest import tmpfs


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


@pytest.mark.parametrize("where", ["older", "newest"])
def test_a_corrupt_record_costs_itself_alone(tmp_path: Path, where: str) -> None:
    # A flipped byte used to lose the rest of its segment (3,848 events in one probe).
    spool = Spool(tmp_path, segment_bytes=4096 if where == "older" else 1 << 20, sync="none")
    data = records(200)
    for r in data:
        spool.append(r)
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[0 if where == "older" else -1]
    raw = bytearray(segment.read_bytes())
    raw[200] ^= 0xFF  # a flipped bit inside a record
    segment.write_bytes(bytes(raw))
    reopened = Spool(tmp_path, segment_bytes=4096, sync="none")
    skipped: list[bytes] = []
    reopened.on_corrupt = skipped.append
    got = drain(reopened)
    assert reopened.stats().corrupt_skipped == 1
    lost = [r for r in data if r not in set(got)]
    assert len(lost) == 1 and got == [r for r in data if r != lost[0]]
    assert (
        len(skipped) == 1
        and lost[0] in bytes(skipped[0]).replace(b"\x00", b"")
        or (len(skipped) == 1 and len(skipped[0]) == len(lost[0]) + 10)
    )
    assert reopened.append(b"after")
    assert drain(reopened) == [b"after"]
    reopened.close()


@pytest.fixture
def tiny_disk(tmp_path: Path):
    with tmpfs(tmp_path / "disk", "1m") as mount:
        yield mount


def fill(directory: Path) -> Path:
    """Fill the file system holding ``directory`` until the disk refuses a write."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\1" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_ack_and_cleanup_work_on_a_full_disk(tiny_disk: Path) -> None:
    # On a full disk the cursor could not be rewritten: the same records were resent
    # forever after space came back (106,000 duplicates in 70 s in one probe), and
    # every new capture was shed.
    spool_dir = tiny_disk / "spool"
    spool = Spool(spool_dir, segment_bytes=64 * 1024, sync="none")
    data = records(2000)
    assert all(spool.append(r) for r in data)
    batch, position = spool.read(500)
    spool.ack(position)  # the cursor exists: written once while there was room
    filler = fill(tiny_disk)
    during = records(50, start=2000)
    assert all(spool.append(r) for r in during), "held in memory while the disk is full"
    assert spool.stats().held_bytes > 0 and spool.stats().shed_disk == 0
    got = list(batch)
    while True:  # the reader goes on, acknowledging on the full disk
        batch, position = spool.read(500)
        if not batch:
            break
        got += batch
        spool.ack(position)
    assert got[: len(data)] == data  # (the disk took a few of ``during`` before it refused)
    filler.unlink()
    spool.sync()  # the sidecar's maintenance, twice a second: the held records go to disk
    assert spool.stats().held_bytes == 0
    assert spool.append(b"after")
    spool.close()
    reopened = Spool(spool_dir, sync="none")
    rest = drain(reopened)
    assert got + rest == [*data, *during, b"after"], "nothing lost, nothing delivered twice"
    reopened.close()


def test_delivered_data_does_not_linger_on_disk(tmp_path: Path) -> None:
    writer = Spool(tmp_path, sync="none")
    reader = Spool(tmp_path, reader=True)
    secret = b'{"card":"4111-1111-1111-1111"}'
    assert writer.append(secret)
    records_read, position = reader.read(10)
    assert records_read == [secret]
    reader.ack(position)
    writer.refresh()  # the sidecar does this twice a second
    assert writer.append(b"next")
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret not in on_disk
    assert reader.read(10)[0] == [b"next"]
    writer.close()
    reader.close()


def test_spool_files_are_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", sync="none")
    spool.append(b"x")
    records_read, position = spool.read(10)
    spool.ack(position)
    spool.append(b"y")
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    for path in (tmp_path / "spool").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name
    spool.close()


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
    spool = Spool(tmp_path, sync="none", hold_bytes=0)
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
    assert isinstance(position, Position)
    reopened = Spool(tmp_path, sync="none")
    assert len(drain(reopened)) == 6
    reopened.close()


def test_a_cursor_of_the_previous_format_is_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path, sync="none")
    for r in records(10):
        spool.append(r)
    _, position = spool.read(4)
    spool.close()
    (tmp_path / "cursor").write_text(f"{position.segment} {position.offset}\n")
    reopened = Spool(tmp_path, sync="none")
    assert drain(reopened) == records(6, start=4)
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
