"""The quarantine keeps what the monitor would not store, and gives it back on replay."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collectors.quarantine import Quarantine
from monitor.cli import main
from tests.conftest import LiveMonitor, credit_event, credit_model


def events(n: int, **changes) -> list[bytes]:
    out = []
    for i in range(n):
        event = credit_event(i, **changes)
        event["features"]["income"] = 123456.0 + i
        out.append(orjson.dumps(event))
    return out


def test_events_are_kept_with_their_reason_in_private_files(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path / "q")
    assert quarantine.put("predictions", "unknown_model", "model: not registered", events(3)) == 3
    assert quarantine.put("records", "corrupt", "checksum", raw=[b"\x00\xffbytes"]) == 1
    assert quarantine.summary() == {"unknown_model": 3, "corrupt": 1}
    assert quarantine.counts() == {"unknown_model": 3, "corrupt": 1}
    held = list(quarantine.read())
    assert [h.event for h in held[:3]] == events(3)
    assert held[3].raw == b"\x00\xffbytes" and held[3].event is None
    assert (tmp_path / "q").stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in (tmp_path / "q").iterdir())
    with pytest.raises(ValueError, match="reason"):
        quarantine.put("predictions", "Not A Reason", "", events(1))


def test_a_full_quarantine_refuses_and_counts(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path, max_bytes=2_000)
    assert quarantine.put("predictions", "invalid", "", events(3)) == 3
    assert quarantine.put("predictions", "invalid", "", events(30)) == 0
    assert quarantine.dropped == 30
    assert quarantine.summary() == {"invalid": 3}


def test_replay_keeps_what_gets_no_outcome_and_what_cannot_be_read(tmp_path: Path) -> None:
    quarantine = Quarantine(tmp_path)
    quarantine.put("predictions", "undelivered", "", events(4))
    quarantine.put("records", "corrupt", "", raw=[b"junk"])
    sent: list[bytes] = []

    def half(kind: str, batch: list[bytes]) -> list[bytes]:
        sent.extend(batch[:2])
        return batch[2:]  # time ran out for the rest

    result = quarantine.replay(half)
    assert (result.replayed, result.quarantined, result.kept) == (2, 0, 3)
    assert sent == events(2)
    assert quarantine.summary() == {"undelivered": 2, "corrupt": 1}
    assert [h.event for h in quarantine.read("undelivered")] == events(4)[2:]


def test_the_command_lists_shows_without_values_and_replays(
    live_monitor: LiveMonitor, tmp_path: Path, capsys, monkeypatch
) -> None:
    quarantine = Quarantine(tmp_path / "q")
    quarantine.put("predictions", "unknown_model", "model: not registered",
                   events(5, model="fraud"))  # fmt: skip
    assert main(["quarantine", "list", "--dir", str(tmp_path / "q")]) == 0
    listed = capsys.readouterr().out
    assert "unknown_model" in listed and " 5 events" in listed and "PUT /v1/models" in listed
    assert main(["quarantine", "show", "--dir", str(tmp_path / "q"), "--limit", "2"]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert len(shown) == 2 and '"model":"fraud"' in shown[0]
    assert "123456" not in "".join(shown), "feature values only with --values"
    assert main(["quarantine", "show", "--dir", str(tmp_path / "q"), "--values"]) == 0
    assert "123456" in capsys.readouterr().out
    monkeypatch.setenv("SIDEWATCH_MONITOR_URL", live_monitor.url)
    # Replayed before the cause is fixed: the monitor refuses them again.
    assert main(["quarantine", "replay", "--dir", str(tmp_path / "q")]) == 0
    assert "stored=0" in capsys.readouterr().out
    assert quarantine.summary() == {"unknown_model": 5}
    live_monitor.app.state.store.put_model(credit_model("fraud"))
    assert main(["quarantine", "replay", "--dir", str(tmp_path / "q")]) == 0
    assert "replayed=5 stored=5" in capsys.readouterr().out
    assert quarantine.summary() == {}
    assert live_monitor.app.state.store.count_predictions("fraud") == 5
