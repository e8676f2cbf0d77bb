"""The window part registry: a part defined and registered in this module alone is fitted
on the reference, scored per window, stored, answered by the window API (and documented
in its OpenAPI schema) and exported in ``/metrics``, with no other file edited.

Oracle: numpy's mean over the same rows (the reference's column, the window's events).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from collectors.naming import MetricName
from monitor.api import create_app
from monitor.errors import ConfigError
from monitor.score.part import PartInput, ReferenceData, Sample, WindowInputs, get_part
from monitor.score.parts import PARTS
from monitor.score.results import WindowResult
from monitor.score.scorer import WindowScorer
from monitor.score.scores import NotScored
from monitor.settings import MonitorSettings
from tests.conftest import credit_model
from tests.monitor.test_scoring import T0, Clock, W, post_events, reference_frame, samples

MEAN_SHIFT: Final = MetricName(
    "sidewatch_test_income_mean_shift_ratio",
    "gauge",
    "The window's mean income over the reference's, minus one (a test part).",
    ("model", "model_version", "feature"),
)


class IncomeShift(BaseModel):
    """The mean of ``income`` in the reference and in the window."""

    model_config = ConfigDict(frozen=True)

    reference_mean: float
    window_mean: float
    rows: int


class IncomeShiftPart:
    """A part as a capability module would write it: fit once, score per window."""

    name: Final = "income_shift"
    public_name: Final = "income_shift"
    inputs: Final[frozenset[PartInput]] = frozenset({"row_sample", "reference"})
    result_model: Final = IncomeShift
    metrics: Final = (MEAN_SHIFT,)

    def __init__(self) -> None:
        self.fits = 0
        self.given: list[WindowInputs] = []

    def fit(self, reference: ReferenceData) -> float | NotScored:
        self.fits += 1
        if "income" not in reference.frame.columns:
            return NotScored(self.name, "the reference has no income column")
        return float(reference.frame["income"].mean())

    def score(self, fitted: float | None, inputs: WindowInputs) -> IncomeShift | NotScored:
        assert fitted is not None
        self.given.append(inputs)
        incomes = [float(f["income"]) for f, _ in inputs.rows]
        return IncomeShift(
            reference_mean=fitted, window_mean=float(np.mean(incomes)), rows=len(incomes)
        )

    def samples(self, result: IncomeShift) -> Iterator[Sample]:
        yield MEAN_SHIFT, ("income",), result.window_mean / result.reference_mean - 1


@pytest.fixture
def part(monkeypatch: pytest.MonkeyPatch) -> IncomeShiftPart:
    found = IncomeShiftPart()
    monkeypatch.setitem(PARTS, found.name, found)
    return found


def test_a_part_from_one_file_is_fitted_scored_stored_answered_and_exported(
    sqlite_url: str, part: IncomeShiftPart
) -> None:
    clock = Clock(T0)
    settings = MonitorSettings(database_url=sqlite_url, window_seconds=W)
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        rng = np.random.default_rng(7)
        reference = reference_frame(rng, 1000)
        upload = client.put(
            "/v1/models/credit/versions/v1/reference",
            content=reference.to_csv(index=False).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert upload.status_code == 201, upload.text
        first, second = reference_frame(rng, 200), reference_frame(rng, 300)
        second["income"] *= 1.5
        post_events(client, first, T0, np.zeros(200))
        post_events(client, second, T0 + W, np.zeros(300))
        clock.now = T0 + 2 * W
        loop = client.app.state.loop
        loop.mark("credit", "v1", [T0, T0 + W])
        loop.run_once()

        assert part.fits == 1, "fitted once per reference revision, not per window"
        # Given only what it declared: no labels, no feature profiles.
        assert part.given and all(
            i.labelled == () and i.feature_profiles is None and i.feature_reference is None
            for i in part.given
        )
        ref_mean = float(reference["income"].to_numpy(dtype=np.float64).mean())
        expected = {T0: first, T0 + W: second}
        for start, frame in expected.items():
            window = client.get(f"/v1/models/credit/versions/v1/windows/{start}")
            assert window.status_code == 200, window.text
            got = window.json()["income_shift"]
            mean = float(frame["income"].to_numpy(dtype=np.float64).mean())
            assert got["rows"] == len(frame)
            assert got["reference_mean"] == pytest.approx(ref_mean, rel=1e-12)
            assert got["window_mean"] == pytest.approx(mean, rel=1e-12)
        listed = client.get("/v1/models/credit/versions/v1/windows").json()
        assert [w["income_shift"]["rows"] for w in listed] == [300, 200]

        # Stored as the result model's JSON, and read back as that model.
        store = client.app.state.store
        (record,) = store.window_results("credit", "v1", since=T0 + W, until=T0 + W, limit=1)
        assert record.scores["income_shift"]["rows"] == 300
        result = WindowResult.from_record(record)
        assert isinstance(result.scores.parts["income_shift"], IncomeShift)

        # Documented: the OpenAPI schema of the window answer comes from the result model.
        spec = client.get("/openapi.json").json()
        schemas = spec["components"]["schemas"]
        field = schemas["WindowPublic"]["properties"]["income_shift"]
        assert {"$ref": "#/components/schemas/IncomeShift"} in field["anyOf"]
        assert set(schemas["IncomeShift"]["properties"]) == {
            "reference_mean",
            "window_mean",
            "rows",
        }

        # Exported from the newest closed window.
        mean = float(second["income"].to_numpy(dtype=np.float64).mean())
        key = (("feature", "income"), ("model", "credit"), ("model_version", "v1"))
        found = samples(client, MEAN_SHIFT.name)
        assert found.keys() == {key}
        assert found[key] == pytest.approx(mean / ref_mean - 1, rel=1e-12)


def test_a_part_left_out_says_why(sqlite_url: str, part: IncomeShiftPart) -> None:
    clock = Clock(T0)
    settings = MonitorSettings(database_url=sqlite_url, window_seconds=W)
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        post_events(client, reference_frame(np.random.default_rng(3), 50), T0, np.zeros(50))
        clock.now = T0 + W
        client.app.state.loop.mark("credit", "v1", [T0])
        client.app.state.loop.run_once()
        window = client.get(f"/v1/models/credit/versions/v1/windows/{T0}").json()
        assert window["income_shift"] is None
        assert {"part": "income_shift", "reason": "no reference was uploaded for this version"} in (
            window["not_scored"]
        )
        assert samples(client, MEAN_SHIFT.name) == {}
    assert part.fits == 0


def test_which_parts_run_is_configuration(sqlite_url: str, part: IncomeShiftPart) -> None:
    settings = MonitorSettings(database_url=sqlite_url, window_parts=["predictions"])
    with TestClient(create_app(settings)) as client:
        spec = client.get("/openapi.json").json()
        window = spec["components"]["schemas"]["WindowPublic"]["properties"]
        assert "served" in window and "income_shift" not in window
    with pytest.raises(ConfigError) as raised:
        create_app(MonitorSettings(database_url=sqlite_url, window_parts=["nosuch"]))
    assert "unknown window part 'nosuch'" in str(raised.value)
    assert f"valid parts: {', '.join(sorted(PARTS))}" in str(raised.value)
    assert "income_shift" in PARTS


def test_which_parts_run_is_configuration_per_model(sqlite_url: str, part: IncomeShiftPart) -> None:
    clock = Clock(T0)
    settings = MonitorSettings(
        database_url=sqlite_url, window_seconds=W, model_window_parts={"credit": ["predictions"]}
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        post_events(client, reference_frame(np.random.default_rng(5), 50), T0, np.zeros(50))
        clock.now = T0 + W
        client.app.state.loop.mark("credit", "v1", [T0])
        client.app.state.loop.run_once()
        window = client.get(f"/v1/models/credit/versions/v1/windows/{T0}").json()
        assert window["served"]["rows"] == 50
        assert window["accuracy_metrics"] is None and window["income_shift"] is None
        left_out = {n["part"] for n in window["not_scored"]}
        assert not left_out & {"accuracy", "income_shift", "quality", "correlation"}, left_out
        assert "prediction_drift" in left_out, "the parts not yet on the registry still run"
    with pytest.raises(ConfigError, match="unknown window part 'nosuch'"):
        create_app(MonitorSettings(database_url=sqlite_url, model_window_parts={"x": ["nosuch"]}))


def test_the_registry_lookup_lists_the_valid_names() -> None:
    assert get_part(PARTS, "predictions") is PARTS["predictions"]
    with pytest.raises(ConfigError) as raised:
        get_part(PARTS, "served")
    assert str(raised.value).endswith(f"valid parts: {', '.join(sorted(PARTS))}")


def test_the_scorer_refuses_an_unknown_part(sqlite_url: str) -> None:
    from monitor.store import Store

    store = Store(sqlite_url)
    try:
        with pytest.raises(ConfigError, match="unknown window part 'nosuch'"):
            WindowScorer(store, window_seconds=W, min_window_events=30, parts=["nosuch"])
    finally:
        store.close()


@pytest.mark.parametrize("name", sorted(PARTS))
def test_every_registered_part_keeps_the_contract(name: str) -> None:
    """Every part on the registry: keyed by its name, a frozen result model, and families
    named in monitor.export.names (the one list of names), labelled model and version
    first."""
    from monitor.export import names

    part = PARTS[name]
    assert part.name == name
    assert part.result_model.model_config.get("frozen") is True, "results are frozen"
    assert part.inputs <= {"row_sample", "labelled", "feature_profiles", "reference"}
    assert part.metrics, "a part exports something"
    for family in part.metrics:
        assert names.ALL.get(family.name) == family, f"{family.name} is not in names.ALL"
        assert family.labels[:2] == ("model", "model_version")
