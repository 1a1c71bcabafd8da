"""The pure helpers of the load bench (bench/load.py): percentiles, run summaries, SSE parsing. No server."""

from __future__ import annotations

import json
import statistics

import pytest

from bench.common import percentile as common_percentile
from bench.load import (
    Result,
    SSEParser,
    parse_sse,
    percentile,
    retry_after_seconds,
    start_offsets,
    summarize,
    summarize_stream,
)


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 10.0
    assert percentile(values, 50) == pytest.approx(5.5)
    assert percentile(values, 95) == pytest.approx(9.55)
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input


def test_percentile_agrees_with_the_house_helper_and_statistics() -> None:
    values = [0.31, 0.12, 2.5, 0.9, 0.4, 0.41, 1.7, 0.05, 0.66, 0.8, 3.1, 0.2]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (50, 95, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])
        assert percentile(values, q) == pytest.approx(common_percentile(values, q))


def test_percentile_edge_cases() -> None:
    assert percentile([], 50) is None
    assert percentile([4.2], 99) == 4.2
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_counts_errors_apart_from_latencies() -> None:
    results = [
        Result(1.0, 200, refused=False, stages={"queue": 0.0, "rerank": 0.9}),
        Result(2.0, 200, refused=True, stages={"queue": 0.5, "rerank": 1.0}),
        Result(3.0, 200, refused=False, stages={"queue": 1.0, "rerank": 1.1}),
        Result(0.01, 503, "HTTP 503", retry_after=4.0),
        Result(30.0, None, "ReadTimeout"),
    ]
    s = summarize(results, wall_s=10.0)
    assert (s["requests"], s["ok"], s["errors"], s["refused"]) == (5, 3, 2, 1)
    assert s["error_kinds"] == {"HTTP 503": 1, "ReadTimeout": 1}
    assert s["throughput_rps"] == pytest.approx(0.3)  # good answers per second of wall time
    assert s["p50_s"] == 2.0 and s["max_s"] == 3.0  # errors do not enter the latencies
    assert s["p95_s"] == pytest.approx(2.9)
    assert s["stages_p50_s"] == {"queue": 0.5, "rerank": 1.0}
    json.dumps(s)  # the --json line must serialise


def test_summarize_window_counts_answers_finished_before_the_deadline() -> None:
    results = [Result(1.0, 200, done_at=1.0), Result(1.0, 200, done_at=9.5), Result(1.0, 200, done_at=12.0),
               Result(0.1, None, "ConnectError", done_at=2.0)]
    s = summarize(results, wall_s=12.0, window_s=10.0)
    assert s["throughput_in_window_rps"] == pytest.approx(0.2)
    assert s["throughput_rps"] == pytest.approx(0.25)
    assert summarize(results, wall_s=12.0)["throughput_in_window_rps"] is None


def test_summarize_empty_run() -> None:
    s = summarize([], wall_s=0.0)
    assert s["requests"] == 0 and s["throughput_rps"] is None and s["p50_s"] is None
    json.dumps(s)


def test_summarize_stream_separates_token_answers_refusals_and_503s() -> None:
    results = [
        Result(5.0, 200, refused=False, ttft=1.0, ttlt=4.5, tokens=20),
        Result(7.0, 200, refused=False, ttft=3.0, ttlt=6.0, tokens=30),
        Result(1.2, 200, refused=True),  # gate refusal: no token, only `done`
        Result(0.02, 503, "HTTP 503", retry_after=8.0),
        Result(0.02, 503, "HTTP 503", retry_after=8.0),
        Result(0.02, 503, "HTTP 503", retry_after=None),
        Result(4.0, 200, "event error: request_timeout", ttft=1.5, tokens=3),
    ]
    s = summarize_stream(results, wall_s=20.0)
    assert s["answers_with_tokens"] == 2 and s["no_token_answers"] == 1
    assert s["ttft_p50_s"] == 2.0 and s["ttft_p95_s"] == pytest.approx(2.9)
    assert s["no_token_done_p50_s"] == 1.2
    assert s["full_p50_s"] == 5.0
    assert s["token_span_p50_s"] == pytest.approx(3.25) and s["tokens_p50"] == 25.0
    assert s["busy_503"] == 3 and s["other_errors"] == 1
    assert s["retry_after_s"] == [(8.0, 2), (None, 1)]
    json.dumps(s)


def test_sse_parser_reads_the_servers_events() -> None:
    body = (
        'event: token\ndata: {"text": "Rising"}\n\n'
        'event: token\ndata: {"text": " Lion"}\n\n'
        ": a comment\n\n"
        'event: citations\ndata: [{"n": 1}]\n\n'
        'event: done\r\ndata: {"text": "Rising Lion [1]", "refused": false}\r\n\r\n'
    )
    events = parse_sse(body)
    assert [e.event for e in events] == ["token", "token", "citations", "done"]
    assert json.loads(events[1].data) == {"text": " Lion"}
    assert json.loads(events[3].data)["refused"] is False


def test_sse_parser_spec_details() -> None:
    events = parse_sse("data: a\ndata:b\n\nevent: x\n\nid: 7\nretry: 10\ndata:  two spaces\n\ndata: cut off")
    assert [(e.event, e.data) for e in events] == [("message", "a\nb"), ("message", " two spaces")]
    p = SSEParser()  # line by line, as httpx's aiter_lines hands them over
    assert p.feed_line("event: error") is None
    assert p.feed_line('data: {"error": "busy"}') is None
    ev = p.feed_line("")
    assert ev is not None and ev.event == "error" and json.loads(ev.data) == {"error": "busy"}
    assert p.feed_line("") is None  # state was reset


def test_retry_after_and_offsets() -> None:
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    offsets = start_offsets(32, 36)
    assert len(set(offsets)) == 32 and all(0 <= o < 36 for o in offsets)
    assert start_offsets(4, 3) == [0, 0, 1, 2]
