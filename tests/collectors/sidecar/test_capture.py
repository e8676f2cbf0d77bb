"""Decoding captured exchanges into events: formats, field policy, trace context, tap."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import struct
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from collectors.contract import PredictionEvent
from collectors.record import EXCHANGE, PREDICTION, Exchange, decode_exchange
from collectors.sidecar.decode import DecodeError, FieldMapping, Message, OutputRules
from collectors.sidecar.decode import build_decoders as decoders_for
from collectors.sidecar.decoder import CaptureConfig, ExchangeDecoder
from collectors.sidecar.policy import FieldPolicy
from collectors.sidecar.trace import parse_traceparent
from tests.collectors.sidecar.helpers import SHIP_TIMEOUT, SidecarProcess
from tests.conftest import LiveMonitor


def exchange(path: str, request: Any, response: Any, *, request_type: bytes = b"application/json",
             request_headers: bytes = b"", **kw: Any) -> Exchange:  # fmt: skip
    def raw(doc: Any) -> bytes:
        return doc if isinstance(doc, bytes) else orjson.dumps(doc)

    request_head = (b"POST %s HTTP/1.1\r\nHost: m\r\nContent-Type: %s\r\n%s\r\n"
                    % (path.encode(), request_type, request_headers))  # fmt: skip
    response_head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n"
    return Exchange(exchange_id="sc-test-1", wall_time=1.7e9, latency=0.01, status=200,
                    sampled=True, request_head=request_head, request_body=raw(request),
                    response_head=response_head, response_body=raw(response), **kw)  # fmt: skip


def events(ex: Exchange, *, mapping: FieldMapping | None = None, policy: FieldPolicy | None = None,
           rules: OutputRules | None = None, model: str | None = "m", version: str | None = "1"
           ) -> list[dict[str, Any]]:  # fmt: skip
    config = CaptureConfig(model, version, tuple(decoders_for(rules or OutputRules(), mapping)),
                           policy or FieldPolicy(), 1 << 20)  # fmt: skip
    decoder = ExchangeDecoder(config)
    out = decoder.events(ex.encode())
    assert all(r[:1] == PREDICTION for r in out)
    docs = [orjson.loads(r[1:]) for r in out]
    for doc in docs:
        PredictionEvent.model_validate(doc)  # the contract holds for every event
    return docs


def test_oip_multi_row_batch_splits_into_rows_with_probabilities() -> None:
    request = {
        "id": "req-7",
        "inputs": [
            {"name": "age", "shape": [2], "datatype": "INT64", "data": [31, 52]},
            {"name": "city", "shape": [2, 1], "datatype": "BYTES", "data": [["paris"], ["oslo"]]},
        ],
    }
    response = {
        "model_name": "credit",
        "model_version": "3",
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["no", "yes"]},
            {"name": "proba", "shape": [2, 2], "datatype": "FP32", "data": [0.9, 0.1, 0.2, 0.8]},
        ],
    }
    docs = events(exchange("/v2/models/credit/infer", request, response), model=None,
                  version=None, rules=OutputRules(class_names=("no", "yes")))  # fmt: skip
    assert [
        (d["model"], d["model_version"], d["event_id"], d["correlation_key"]) for d in docs
    ] == [("credit", "3", "sc-test-1-0", "req-7:0"), ("credit", "3", "sc-test-1-1", "req-7:1")]
    assert docs[1]["features"] == {"age": 52, "city": "oslo"}
    assert docs[1]["outputs"] == {"predicted_class": "yes", "score": 0.8,
                                  "probabilities": {"no": 0.2, "yes": 0.8}}  # fmt: skip


def test_oip_matrix_columns_take_configured_names_and_versions_from_path() -> None:
    request = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.5, 2.5]}]}
    response = {"outputs": [{"name": "y", "shape": [1], "datatype": "FP64", "data": [9.5]}]}
    docs = events(exchange("/v2/models/r/versions/7/infer", request, response),
                  rules=OutputRules(feature_names=("a", "b")), version=None)  # fmt: skip
    assert docs[0]["features"] == {"a": 1.5, "b": 2.5}
    assert docs[0]["outputs"] == {"value": 9.5}
    assert docs[0]["model_version"] == "7"


@pytest.mark.parametrize("request_doc", [
    {"instances": [[1.0, 2.0], [3.0, 4.0]]},
    {"inputs": [[1.0, 2.0], [3.0, 4.0]]},
    {"instances": [{"f0": 1.0, "f1": 2.0}, {"f0": 3.0, "f1": 4.0}]},
    {"inputs": {"f0": [1.0, 3.0], "f1": [2.0, 4.0]}},
])  # fmt: skip
def test_kserve_v1_and_tf_serving_shapes(request_doc: dict[str, Any]) -> None:
    docs = events(exchange("/v1/models/m:predict", request_doc, {"predictions": [0, 1]}))
    assert [d["features"] for d in docs] == [{"f0": 1.0, "f1": 2.0}, {"f0": 3.0, "f1": 4.0}]
    assert [d["outputs"] for d in docs] == [{"predicted_class": 0}, {"predicted_class": 1}]


def test_mlflow_csv_and_records() -> None:
    csv = b"mean radius,kind\n1.5,a\n,b\n"
    ex = exchange("/invocations", csv, {"predictions": [0.25, 0.75]}, request_type=b"text/csv")
    docs = events(ex, rules=OutputRules(task="classification"))
    assert [d["features"] for d in docs] == [{"mean_radius": 1.5, "kind": "a"},
                                             {"mean_radius": None, "kind": "b"}]  # fmt: skip
    assert [d["outputs"] for d in docs] == [{"score": 0.25}, {"score": 0.75}]


def test_field_mapping_for_a_custom_format() -> None:
    mapping = FieldMapping(r"^/score$", "request.rows[*]", predicted_class="response.out[*].label",
                           score="response.out[*].p")  # fmt: skip
    mapping = FieldMapping(r"^/score$", "rows[*]", predicted_class="out[*].label",
                           score="out[*].p")  # fmt: skip
    docs = events(exchange("/score", {"rows": [{"a": 1}, {"a": 2}]},
                           {"out": [{"label": "x", "p": 0.1}, {"label": "y", "p": 0.9}]}),
                  mapping=mapping)  # fmt: skip
    assert [(d["features"], d["outputs"]) for d in docs] == [
        ({"a": 1}, {"predicted_class": "x", "score": 0.1}),
        ({"a": 2}, {"predicted_class": "y", "score": 0.9}),
    ]


def test_the_configured_variant_and_stage_tag_every_event() -> None:
    request = {"instances": [[1], [2]]}
    config = CaptureConfig("m", "1", tuple(decoders_for(OutputRules(), None)), FieldPolicy(),
                           1 << 20, variant="shadow", stage="ranker")  # fmt: skip
    out = ExchangeDecoder(config).events(
        exchange("/invocations", request, {"predictions": [1, 0]}).encode()
    )
    docs = [PredictionEvent.model_validate_json(r[1:]) for r in out]
    assert [(d.variant, d.stage) for d in docs] == [("shadow", "ranker")] * 2
    untagged = events(exchange("/invocations", request, {"predictions": [1, 0]}))
    assert all("variant" not in d and "stage" not in d for d in untagged)


def test_row_mismatch_and_unknown_paths_are_counted_not_raised() -> None:
    config = CaptureConfig(
        "m", "1", tuple(decoders_for(OutputRules(), None)), FieldPolicy(), 1 << 20
    )
    decoder = ExchangeDecoder(config)
    assert decoder.events(exchange("/invocations", {"instances": [[1], [2]]},
                                   {"predictions": [1]}).encode()) == []  # fmt: skip
    assert decoder.events(exchange("/other", {}, {}).encode()) == []
    assert decoder.events(b"x-not-a-record") == []
    assert decoder.counts()[1] == {"row_mismatch": 1, "unknown_format": 1, "corrupt_record": 1}


def test_policy_allows_denies_and_redacts_with_a_keyed_hash() -> None:
    key = b"k" * 32
    policy = FieldPolicy(allow=frozenset({"email", "age", "ssn", "zip"}), deny=frozenset({"zip"}),
                         redact=frozenset({"email"}), key=key)  # fmt: skip
    docs = events(exchange("/invocations", {"dataframe_records": [
        {"email": "a@b.c", "age": 40, "ssn": None, "zip": "75001", "other": 1}]},
        {"predictions": [1]}), policy=policy)  # fmt: skip
    digest = hmac.new(key, repr("a@b.c").encode(), hashlib.sha256).hexdigest()[:24]
    assert docs[0]["features"] == {"email": f"h:{digest}", "age": 40, "ssn": None}
    assert "a@b.c" not in orjson.dumps(docs).decode()
    dropping = FieldPolicy(redact=frozenset({"email"}), mode="drop")
    assert dropping.apply({"email": "a@b.c", "age": 1}) == {"age": 1}
    with pytest.raises(ValueError, match="key"):
        FieldPolicy(redact=frozenset({"email"}), key=b"short")


@pytest.mark.parametrize(("listed", "sent"), [("credit_card", "credit card"),
                                             ("credit card", "credit card"),
                                             ("credit card", "credit_card")])  # fmt: skip
def test_policy_matches_the_name_the_monitor_shows_and_the_raw_one(listed: str, sent: str
                                                                   ) -> None:  # fmt: skip
    key = b"k" * 32
    row = {"dataframe_records": [{sent: "4111-1111", "ssn": "078-05", "age": 40}]}
    denied = events(exchange("/invocations", row, {"predictions": [1]}),
                    policy=FieldPolicy(deny=frozenset({listed, "ssn"})))  # fmt: skip
    assert denied[0]["features"] == {"age": 40}
    redacted = events(exchange("/invocations", row, {"predictions": [1]}),
                      policy=FieldPolicy(redact=frozenset({listed}), key=key))  # fmt: skip
    digest = hmac.new(key, repr("4111-1111").encode(), hashlib.sha256).hexdigest()[:24]
    assert redacted[0]["features"] == {"credit_card": f"h:{digest}", "ssn": "078-05", "age": 40}
    allowed = events(exchange("/invocations", row, {"predictions": [1]}),
                     policy=FieldPolicy(allow=frozenset({listed, "age"})))  # fmt: skip
    assert allowed[0]["features"] == {"credit_card": "4111-1111", "age": 40}


def test_traceparent_parsing_follows_the_w3c_rules() -> None:
    good = parse_traceparent(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert good is not None and good.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert good.child_header().startswith(b"00-4bf92f3577b34da6a3ce929d0e0e4736-")
    trace, span = b"4bf92f3577b34da6a3ce929d0e0e4736", b"00f067aa0ba902b7"
    bad = [b"00-" + b"0" * 32 + b"-" + span + b"-01", b"ff-" + trace + b"-" + span + b"-01",
           b"00-" + trace.upper() + b"-" + span + b"-01", b"garbage", None]  # fmt: skip
    for value in bad:
        assert parse_traceparent(value) is None


heads = st.binary(max_size=80).map(lambda b: b"POST /p HTTP/1.1\r\nX: " + b + b"\r\n\r\n")


@given(st.builds(Exchange, exchange_id=st.from_regex(r"sc-[a-f0-9]{4}-\d{1,5}", fullmatch=True),
                 wall_time=st.floats(0, 2e9), latency=st.floats(0, 100),
                 status=st.integers(100, 599), sampled=st.booleans(), request_head=heads,
                 request_body=st.one_of(st.none(), st.binary(max_size=50)),
                 response_head=st.binary(max_size=80),
                 response_body=st.one_of(st.none(), st.binary(max_size=50)),
                 model=st.text(max_size=10)))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_exchange_records_round_trip(ex: Exchange) -> None:
    assert decode_exchange(ex.encode()) == ex


def test_the_heads_give_trace_context_correlation_and_content_types() -> None:
    trace = b"traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
    request = {"dataframe_split": {"columns": ["a"], "data": [[0.5]]}}
    headers = trace + b"X-Request-Id: corr-1\r\nContent-Encoding: gzip\r\n"
    ex = exchange("/invocations?x=1", gzip.compress(orjson.dumps(request)),
                  {"predictions": [1]}, request_headers=headers)  # fmt: skip
    [doc] = events(ex)
    assert (doc["trace_id"], doc["parent_span_id"], doc["correlation_key"]) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "corr-1")  # fmt: skip
    assert doc["features"] == {"a": 0.5}
    assert ex.method == b"POST" and ex.path == "/invocations"


def test_an_event_that_breaks_the_contract_is_shipped_for_the_monitor_to_reject() -> None:
    # It used to be dropped here with a count (invalid_event); the monitor now rejects
    # it alone, with its reason, and the shipper quarantines it.
    request = {"instances": [{"a": "x" * 2000}, {"a": 1.5}]}
    ex = exchange("/v1/models/m:predict", request, {"predictions": [1, 0]})
    config = CaptureConfig("m", "1", tuple(decoders_for(OutputRules(), None)), FieldPolicy(),
                           1 << 20)  # fmt: skip
    decoder = ExchangeDecoder(config)
    out = [orjson.loads(r[1:]) for r in decoder.events(ex.encode())]
    assert [len(str(e["features"]["a"])) for e in out] == [2000, 3]
    with pytest.raises(ValidationError):
        PredictionEvent.model_validate(out[0])
    PredictionEvent.model_validate(out[1])
    assert decoder.counts()[1] == Counter()


def test_tap_pairs_kserve_cloud_events(echo_monitor: LiveMonitor, tmp_path: Path) -> None:
    car = SidecarProcess(None, echo_monitor.url, tmp_path / "spool", tap=True,
                         args=["--version", "v1"]).start()  # fmt: skip
    try:
        url = f"http://127.0.0.1:{car.tap_port}/"
        request = orjson.dumps({"instances": [{"a": 0.25}, {"a": 0.75}]})
        response = orjson.dumps({"predictions": [0, 1]})
        for ce_id in ("ev-1", "ev-2"):
            halves = [
                ("org.kubeflow.serving.inference.request", request),
                ("org.kubeflow.serving.inference.response", response),
            ]
            if ce_id == "ev-2":
                halves.reverse()  # the response may arrive first
            for ce_type, body in halves:
                req = urllib.request.Request(url, data=body, method="POST", headers={
                    "Content-Type": "application/json", "ce-id": ce_id, "ce-type": ce_type,
                    "ce-specversion": "1.0", "ce-source": "test",
                    "ce-inferenceservicename": "m1"})  # fmt: skip
                assert urllib.request.urlopen(req, timeout=5).status == 202
        bad = urllib.request.Request(url, data=b"{}", method="POST", headers={"ce-id": "x"})
        try:
            urllib.request.urlopen(bad, timeout=5)
            raise AssertionError("expected 400")
        except urllib.error.HTTPError as exc:
            assert exc.code == 400
        deadline = time.monotonic() + SHIP_TIMEOUT
        while car.metric("sidewatch_sidecar_shipped_events_total") < 4:
            assert time.monotonic() < deadline, car.metrics()
            time.sleep(0.1)
        assert car.metric("sidewatch_sidecar_events_captured_total", model="m1") == 4
        assert car.metric("sidewatch_sidecar_requests_total", model="m1", code="2xx") == 2
        assert car.metric("sidewatch_sidecar_capture_dropped_total", reason="tap_rejected") == 1
    finally:
        car.stop()


def test_decode_error_messages_hold_no_values() -> None:
    with pytest.raises(DecodeError) as info:
        decoders_for(OutputRules(), None)[2].decode(
            "/invocations", Message(b'{"dataframe_split": {"columns": ["secret-col"], "data": '
                                    b'[["top-secret", 2]]}}'), None)  # fmt: skip
    assert "top-secret" not in str(info.value)


def test_an_error_response_is_counted_never_spooled(tmp_path: Path) -> None:
    from collectors.sidecar.recorder import Recorder, RequestStats
    from collectors.spool import Spool

    spool = Spool(tmp_path, sync="none")
    recorder = Recorder("m", (), spool, stats := RequestStats())
    head = b"POST /invocations HTTP/1.1\r\n\r\n"
    for status, sampled in ((200, False), (200, True), (500, True), (404, False), (304, True)):
        recorder.finished(head, [b"{}"], b"HTTP/1.1 %d X\r\n\r\n" % status, [b"{}"], status,
                          1.0, 1.002, sampled)  # fmt: skip
    records, _ = spool.read(10)
    assert [decode_exchange(r).status for r in records] == [200]
    assert (stats.sampled_out, stats.model_errors, stats.no_prediction) == (1, 2, 1)
    counts = stats.models["m"]
    assert counts.codes == [0, 0, 2, 1, 1, 1]
    assert sum(counts.buckets) == 5 and counts.buckets[1] == 5  # 2 ms: the 2.5 ms bucket
    spool.close()


def test_an_error_record_of_an_older_sidecar_gives_no_event() -> None:
    config = CaptureConfig("m", "1", tuple(decoders_for(OutputRules(), None)), FieldPolicy(), 1024)
    decoder = ExchangeDecoder(config)
    body = b'{"dataframe_split": {"columns": ["a"], "data": [[1.0]]}}'
    for status in (404, 500):
        record = Exchange("e", 1.0, 0.01, status, True, b"POST /invocations HTTP/1.1\r\n\r\n",
                          body, b"HTTP/1.1 %d X\r\n\r\n" % status, b"{}").encode()  # fmt: skip
        assert decoder.events(record) == []
    assert decoder.counts() == ({}, {"model_error": 2})


def test_bodies_too_large_for_a_spool_record_are_left_out_and_counted(tmp_path: Path) -> None:
    from collectors.sidecar.recorder import Recorder, RequestStats
    from collectors.spool import MAX_RECORD_BYTES, Spool

    spool = Spool(tmp_path, sync="none")
    recorder = Recorder("m", (), spool, RequestStats())
    half = b"1" * (MAX_RECORD_BYTES // 2 + 1)  # each body within a large capture limit
    recorder.finished(b"POST /invocations HTTP/1.1\r\n\r\n", [half], b"HTTP/1.1 200 OK\r\n\r\n",
                      [half], 200, 1.0, 1.002, True)  # fmt: skip
    [record], _ = spool.read(10)
    ex = decode_exchange(record)
    assert ex.request_body is None and ex.response_body is None
    config = CaptureConfig("m", "1", tuple(decoders_for(OutputRules(), None)), FieldPolicy(), 1)
    decoder = ExchangeDecoder(config)
    assert decoder.events(record) == [] and decoder.counts()[1] == {"too_large": 1}
    spool.close()


def test_records_of_the_previous_spool_format_still_ship() -> None:
    # A record as the sidecar before format 2 wrote it (heads parsed at capture time):
    # kind byte, wall time, latency, status, flags, 13 field lengths, the fields.
    request = gzip.compress(orjson.dumps({"dataframe_split": {"columns": ["a"], "data": [[0.5]]}}))
    fields = (b"sc-old-1", b"POST", b"/invocations", b"application/json", b"gzip",
              b"4bf92f3577b34da6a3ce929d0e0e4736", b"00f067aa0ba902b7", b"corr-1",
              b"application/json", b"", b"", request, b'{"predictions": [1]}')  # fmt: skip
    header = struct.pack(">ddHB13I", 1.7e9, 0.01, 200, 1, *map(len, fields))
    record = b"".join((EXCHANGE, header, *fields))
    config = CaptureConfig("m", "1", tuple(decoders_for(OutputRules(), None)), FieldPolicy(),
                           1 << 20, correlation_header=b"x-order-id")  # fmt: skip
    decoder = ExchangeDecoder(config)
    [event] = [orjson.loads(r[1:]) for r in decoder.events(record)]
    assert decoder.counts()[1] == Counter(), "nothing dropped"
    PredictionEvent.model_validate(event)
    assert event["event_id"] == "sc-old-1-0"
    assert (event["trace_id"], event["parent_span_id"], event["correlation_key"]) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "corr-1")  # fmt: skip
    assert event["features"] == {"a": 0.5}
    assert (event["timestamp"], event["latency_seconds"]) == (1.7e9, 0.01)
    # A truncated old record is corrupt, counted, and not shipped.
    assert decoder.events(record[:-3]) == []
    assert decoder.counts()[1] == Counter({"corrupt_record": 1})


def test_credential_lines_are_cut_whole_in_any_case() -> None:
    from collectors.sidecar.recorder import strip_pattern

    head = (b"POST /invocations HTTP/1.1\r\nHost: m\r\nAUTHORIZATION: Bearer s3cret\r\n"
            b"cookie:a=1;\r\n b=2\r\nX-Api-Key: k3y\r\nAuthorization-Hint: kept\r\n"
            b"Set-Cookie: sid=1\r\nContent-Type: application/json\r\n\r\n")  # fmt: skip
    cut = strip_pattern(["x-api-key"]).sub(b"", head)
    assert cut == (b"POST /invocations HTTP/1.1\r\nHost: m\r\nAuthorization-Hint: kept\r\n"
                   b"Content-Type: application/json\r\n\r\n")  # fmt: skip
    assert strip_pattern().sub(b"", head).count(b"X-Api-Key: k3y") == 1  # only if configured


def test_strip_headers_must_be_header_names() -> None:
    from collectors.sidecar.settings import SidecarSettings

    settings = SidecarSettings(upstream="http://m:80", strip_headers=frozenset({"X-Secret"}))
    assert settings.strip_headers == frozenset({"x-secret"})
    with pytest.raises(ValidationError, match="no HTTP header name"):
        SidecarSettings(upstream="http://m:80", strip_headers=frozenset({"bad name"}))


def test_variant_and_stage_settings_reach_the_capture_config() -> None:
    from collectors.sidecar.settings import SidecarSettings
    from collectors.sidecar.shipping import capture_config

    settings = SidecarSettings(upstream="http://m:80", variant="b", stage="ranker")
    config = capture_config(settings)
    assert (config.variant, config.stage) == ("b", "ranker")
    untagged = capture_config(SidecarSettings(upstream="http://m:80"))
    assert (untagged.variant, untagged.stage) == (None, None)
    with pytest.raises(ValidationError, match="stage"):
        SidecarSettings(upstream="http://m:80", stage="not a stage")
