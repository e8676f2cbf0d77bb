"""The monitor's settings: precedence, validation, and the loopback rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.api import create_app
from monitor.cli import main
from monitor.errors import ConfigError
from monitor.settings import MonitorSettings


def test_arguments_beat_environment_beats_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MonitorSettings().port == 8700
    monkeypatch.setenv("SIDEWATCH_PORT", "9100")
    monkeypatch.setenv("SIDEWATCH_WINDOW_SECONDS", "60")
    assert (MonitorSettings().port, MonitorSettings().window_seconds) == (9100, 60)
    assert MonitorSettings(port=9200).port == 9200


def test_ingest_tokens_are_json_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDEWATCH_INGEST_TOKENS", '{"0123456789abcdef": ["credit"]}')
    settings = MonitorSettings()
    assert settings.ingest_tokens == {"0123456789abcdef": ["credit"]}
    assert settings.auth_enabled


def test_without_tokens_only_loopback_is_allowed() -> None:
    with pytest.raises(ValidationError, match="SIDEWATCH_ADMIN_TOKEN"):
        MonitorSettings(host="0.0.0.0")
    assert MonitorSettings(host="::1").host == "::1"
    assert MonitorSettings(host="0.0.0.0", admin_token="x" * 16).auth_enabled


def test_short_tokens_are_refused() -> None:
    with pytest.raises(ValidationError, match="16 characters"):
        MonitorSettings(admin_token="short")


def test_bad_values_are_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDEWATCH_WINDOW_SECONDS", "0")
    with pytest.raises(ValidationError, match="window_seconds"):
        MonitorSettings()


def test_serve_reports_bad_settings_with_exit_code_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "SIDEWATCH_ADMIN_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("SIDEWATCH_DATABASE_URL", "mysql://localhost/x")
    assert main(["migrate"]) == 1
    assert "sqlite or postgresql" in capsys.readouterr().err


def test_window_score_settings_have_defaults_and_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = MonitorSettings()
    assert (settings.score_sample_rows, settings.multivariate_method) == (
        5_000,
        "pca_reconstruction",
    )
    assert settings.correlation_max_features == 20
    monkeypatch.setenv("SIDEWATCH_MULTIVARIATE_METHOD", "domain_classifier")
    monkeypatch.setenv("SIDEWATCH_SCORE_SAMPLE_ROWS", "20000")
    assert (MonitorSettings().multivariate_method, MonitorSettings().score_sample_rows) == (
        "domain_classifier",
        20_000,
    )
    monkeypatch.setenv("SIDEWATCH_MULTIVARIATE_METHOD", "isolation_forest")
    with pytest.raises(ValidationError, match="pca_reconstruction"):
        MonitorSettings()
    with pytest.raises(ValidationError, match="score_sample_rows"):
        MonitorSettings(score_sample_rows=10, multivariate_method="off")
    with pytest.raises(ValidationError, match="correlation_max_features"):
        MonitorSettings(correlation_max_features=1, multivariate_method="off")


def test_the_scrape_token_is_read_checked_and_turns_auth_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValidationError, match="SIDEWATCH_SCRAPE_TOKEN must be at least 16"):
        MonitorSettings(scrape_token="short")
    monkeypatch.setenv("SIDEWATCH_SCRAPE_TOKEN", "scrape-0123456789")
    monkeypatch.setenv("SIDEWATCH_PUBLIC_DOCS", "true")
    settings = MonitorSettings()
    assert settings.scrape_token is not None
    assert settings.scrape_token.get_secret_value() == "scrape-0123456789"
    assert settings.auth_enabled and settings.public_docs
    assert "scrape-0123456789" not in repr(settings)


def test_drift_test_names_are_checked_by_the_registry_at_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    valid = "valid tests: auto, chisquare, hellinger, jensenshannon, ks, psi, wasserstein, z"
    assert MonitorSettings(drift_test="ks", drift_tests={"income": "auto"}).drift_test == "ks"
    monkeypatch.setenv("SIDEWATCH_DRIFT_TEST", "kolmogorov")
    with pytest.raises(ConfigError) as error:
        create_app(MonitorSettings(database_url=f"sqlite:///{tmp_path / 'a.db'}"))
    assert "unknown drift test 'kolmogorov'" in str(error.value)
    assert valid in str(error.value)
    assert main(["serve", "--database-url", f"sqlite:///{tmp_path / 'b.db'}"]) == 2
    assert valid in capsys.readouterr().err
    monkeypatch.delenv("SIDEWATCH_DRIFT_TEST")
    monkeypatch.setenv("SIDEWATCH_DRIFT_TESTS", '{"income": "psi", "age": "nope"}')
    with pytest.raises(ConfigError, match="unknown drift test 'nope'"):
        create_app(MonitorSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}"))
