"""`sb top`: parsing the exposition format, quantiles from bucket increases, summing replicas, the table;
and the command itself against a real Redis holding heartbeats and real metrics endpoints."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterable, Iterator

import pytest
import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

import switchboard.metrics  # noqa: F401  (registers the catalogue in the default registry)
from switchboard import keys, top
from switchboard.cli import main
from switchboard.top import Endpoint, Scrape, bucket_quantile, build_view, parse_scrape, render
from tests.conftest import free_port

HOST = socket.gethostname()
FILTER = Endpoint("filter", 0, "http://127.0.0.1:9313/metrics")
FILTER_1 = Endpoint("filter", 1, "http://127.0.0.1:9323/metrics")
PLANNER = Endpoint("planner", 0, "http://127.0.0.1:9312/metrics")


class Stage:
    """A registry holding the metrics one service exposes, to be observed between two scrapes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        buckets = (0.01, 0.1, 1.0)
        self.wait = Histogram(top.STAGE_WAIT, "", ["stage", "queue"], buckets=buckets, registry=self.registry)
        self.work = Histogram(top.STAGE_WORK, "", ["stage"], buckets=buckets, registry=self.registry)
        self.errors = Counter(top.STAGE_ERRORS, "", ["stage", "error"], registry=self.registry)
        self.length = Gauge(top.STREAM_LENGTH, "", ["stream"], registry=self.registry)
        self.pending = Gauge(top.STREAM_PENDING, "", ["stream", "group"], registry=self.registry)
        self.runs = Counter(top.RUNS_FINISHED, "", ["status"], registry=self.registry)
        self.tokens = Histogram(top.GENERATED_TOKENS, "", ["stage"], buckets=(1, 10, 100), registry=self.registry)

    def scrape(self) -> Scrape:
        return parse_scrape(generate_latest(self.registry).decode())


def test_the_parser_keeps_samples_by_name_and_labels_and_knows_the_gauges() -> None:
    stage = Stage()
    stage.work.labels(stage="filter").observe(0.05)
    stage.errors.labels(stage="filter", error="Timeout").inc(2)
    stage.length.labels(stream="sb:turns").set(7)
    scrape = stage.scrape()
    assert scrape.samples[(top.STAGE_WORK + "_bucket", (("le", "0.1"), ("stage", "filter")))] == 1
    assert scrape.samples[(top.STAGE_WORK + "_bucket", (("le", "0.01"), ("stage", "filter")))] == 0
    assert scrape.samples[(top.STAGE_WORK + "_count", (("stage", "filter"),))] == 1
    assert scrape.samples[(top.STAGE_ERRORS, (("error", "Timeout"), ("stage", "filter")))] == 2
    assert scrape.gauges == {top.STREAM_LENGTH}
    assert not [name for name, _ in scrape.samples if name.endswith("_created")]


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    buckets = [(0.1, 10.0), (0.5, 20.0), (math.inf, 20.0)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.1)
    assert bucket_quantile(0.95, buckets) == pytest.approx(0.1 + 0.4 * 9 / 10)
    assert bucket_quantile(0.25, reversed(buckets)) == pytest.approx(0.05)  # order does not matter


def test_a_quantile_past_the_last_bound_is_that_bound_and_an_empty_histogram_has_none() -> None:
    assert bucket_quantile(0.95, [(0.1, 1.0), (1.0, 2.0), (math.inf, 10.0)]) == 1.0
    assert bucket_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert bucket_quantile(0.5, []) is None
    assert bucket_quantile(0.5, [(0.1, 3.0)]) is None  # no +Inf bucket: not a whole histogram


def test_increases_count_new_series_from_zero_and_a_restarted_process_from_its_restart() -> None:
    name = top.TURNS_ACCEPTED
    before = Scrape({(name, (("api", "http"),)): 10.0, (top.STREAM_LENGTH, ()): 3.0}, frozenset({top.STREAM_LENGTH}))
    after = Scrape(
        {(name, (("api", "http"),)): 4.0, (name, (("api", "grpc"),)): 2.0, (top.STREAM_LENGTH, ()): 9.0},
        frozenset({top.STREAM_LENGTH}),
    )
    assert top.increases(before, after) == {(name, (("api", "http"),)): 4.0, (name, (("api", "grpc"),)): 2.0}


def observe(stage: Stage, name: str, values: Iterable[float]) -> None:
    for value in values:
        stage.work.labels(stage=name).observe(value)


def test_a_view_sums_the_replicas_of_a_stage_over_the_interval() -> None:
    replica_0, replica_1 = Stage(), Stage()
    observe(replica_0, "filter", [5.0] * 50)  # before the interval: not in it
    before = {FILTER: replica_0.scrape(), FILTER_1: replica_1.scrape()}
    observe(replica_0, "filter", [0.05] * 6)
    observe(replica_1, "filter", [0.05] * 2 + [0.5] * 2)
    replica_1.wait.labels(stage="filter", queue="rpc").observe(0.005)
    replica_1.errors.labels(stage="filter", error="Timeout").inc()
    view = build_view(before, {FILTER: replica_0.scrape(), FILTER_1: replica_1.scrape()}, seconds=2.0)

    [row] = view.stages
    assert row.stage == "filter"
    assert row.per_second == pytest.approx(10 / 2.0)
    # Ten observations: eight in (0.01, 0.1], two in (0.1, 1]: p50 is the 5th, p95 the 9.5th.
    assert row.work[0] == pytest.approx(0.01 + 0.09 * 5 / 8)
    assert row.work[1] == pytest.approx(0.1 + 0.9 * 1.5 / 2)
    assert row.wait[0] == pytest.approx(0.005)
    assert (row.errors, row.errors_total) == (1, 1)


def test_stream_gauges_are_one_reading_of_redis_not_summed_over_services() -> None:
    filter_, planner = Stage(), Stage()
    for stage, length in ((filter_, 12), (planner, 14)):  # refreshed at different heartbeats
        stage.length.labels(stream="sb:turns").set(length)
        stage.pending.labels(stream="sb:turns", group="planner").set(2)
    before = {FILTER: filter_.scrape(), PLANNER: planner.scrape()}
    view = build_view(before, {FILTER: filter_.scrape(), PLANNER: planner.scrape()}, seconds=1.0)
    assert [(s.stream, s.length, s.groups) for s in view.streams] == [("sb:turns", 14, (("planner", 2, None),))]


def test_an_endpoint_that_does_not_answer_is_shown_and_a_new_one_counts_from_the_next_refresh() -> None:
    old, new = Stage(), Stage()
    observe(new, "planner", [0.05] * 40)
    new.runs.labels(status="answered").inc(40)
    new.tokens.labels(stage="router").observe(30)
    view = build_view({FILTER: old.scrape()}, {FILTER: "ConnectError", PLANNER: new.scrape()}, seconds=2.0)
    states = {s.endpoint: s for s in view.endpoints}
    assert states[FILTER].error == "ConnectError"
    assert states[PLANNER].new and not states[PLANNER].error
    [row] = view.stages
    assert (row.stage, row.per_second, row.work) == ("planner", 0.0, (None, None))
    assert (view.runs_per_second, view.generated_tokens_per_second) == (0.0, 0.0)


def test_rates_of_runs_turns_and_tokens() -> None:
    gateway = Stage()
    before = {PLANNER: gateway.scrape()}
    gateway.runs.labels(status="answered").inc(3)
    gateway.runs.labels(status="failed").inc()
    gateway.tokens.labels(stage="router").observe(30)
    gateway.tokens.labels(stage="router").observe(10)
    view = build_view(before, {PLANNER: gateway.scrape()}, seconds=4.0)
    assert view.runs_per_second == 1.0
    assert view.runs_by_status == (("answered", 3.0), ("failed", 1.0))
    assert view.generated_tokens_per_second == 10.0
    assert "runs finished 1.00/s (answered 0.75, failed 0.25)" in render(view, "sb top")


def test_the_table_shows_each_stage_stream_and_endpoint_in_plain_text() -> None:
    stage = Stage()
    before = {FILTER: stage.scrape()}
    observe(stage, "filter", [0.5] * 4)
    stage.length.labels(stream="sb:turns").set(3)
    stage.pending.labels(stream="sb:turns", group="planner").set(1)
    text = render(build_view(before, {FILTER: stage.scrape(), PLANNER: "ReadTimeout"}, seconds=2.0), "sb top")
    lines = text.splitlines()
    assert lines[0] == "sb top"
    header = next(line for line in lines if line.startswith("stage"))
    assert header.split() == [
        "stage",
        "wait",
        "p50",
        "wait",
        "p95",
        "work",
        "p50",
        "work",
        "p95",
        "done/s",
        "errors",
        "(all)",
    ]
    assert next(line for line in lines if line.startswith("filter ")).split() == [
        "filter", "-", "-", "550", "ms", "955", "ms", "2.00", "0", "(0)"
    ]  # fmt: skip
    assert next(line for line in lines if line.startswith("sb:turns")).split() == ["sb:turns", "3", "planner", "1", "-"]
    assert "planner  http://127.0.0.1:9312/metrics  NO ANSWER (ReadTimeout)" in text
    assert "\x1b" not in text


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.0004, "0.4 ms"), (0.0123, "12 ms"), (0.5, "500 ms"), (1.25, "1.25 s"), (125.0, "2m05s")],
)
def test_latencies_read_as_a_person_reads_them(seconds: float | None, shown: str) -> None:
    assert top.format_seconds(seconds) == shown


def test_a_service_on_this_machine_is_read_on_the_loopback_and_one_elsewhere_by_its_name() -> None:
    record = {"name": "router", "host": HOST, "replica": 1, "metrics_port": 9324, "grpc": "127.0.0.1:7324"}
    assert top.endpoint_from_heartbeat(record, HOST) == Endpoint("router", 1, "http://127.0.0.1:9324/metrics")
    elsewhere = top.endpoint_from_heartbeat({**record, "host": "box-2"}, HOST)
    assert elsewhere is not None and elsewhere.url == "http://box-2:9324/metrics" and elsewhere.label == "router#1"
    assert top.endpoint_from_heartbeat({"name": "router", "host": HOST}, HOST) is None


def test_every_name_top_reads_is_in_the_catalogue() -> None:
    families = {f.name: f.type for f in _families(generate_latest(REGISTRY).decode())}
    for name in (top.STAGE_WAIT, top.STAGE_WORK, top.GENERATED_TOKENS, top.PROMPT_TOKENS):
        assert families.get(name) == "histogram", name
    for name in (top.STAGE_ERRORS, top.TURNS_ACCEPTED, top.RUNS_FINISHED, top.DEAD_LETTERS):
        assert families.get(name.removesuffix("_total")) == "counter", name
    for name in (top.STREAM_LENGTH, top.STREAM_PENDING, top.STREAM_LAG, top.CONFIRMATIONS_WAITING):
        assert families.get(name) == "gauge", name


def _families(text: str) -> list[Metric]:
    from prometheus_client.parser import text_string_to_metric_families

    return list(text_string_to_metric_families(text))


# ---- the command, against a real Redis and real endpoints ----


class Growing(Collector):
    """A service whose filter stage finishes four calls between any two scrapes, each taking between
    20 and 60 ms, and whose stream holds 5 entries."""

    def __init__(self) -> None:
        self.scrapes = 0

    def collect(self) -> Iterator[Metric]:
        self.scrapes += 1
        done = 4.0 * self.scrapes
        work = HistogramMetricFamily(top.STAGE_WORK, "", labels=["stage"])
        work.add_metric(["filter"], [("0.02", 0.0), ("0.06", done), ("+Inf", done)], sum_value=0.04 * done)
        yield work
        length = GaugeMetricFamily(top.STREAM_LENGTH, "", labels=["stream"])
        length.add_metric([keys.TURNS], 5.0)
        yield length
        yield CounterMetricFamily(top.DEAD_LETTERS, "", value=1.0)


@pytest.fixture
def heartbeats(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    """A database of the test Redis of its own (the stack tests use the first), named to `sb`."""
    url = redis_url.rsplit("/", 1)[0] + "/3"
    client = redis.Redis.from_url(url)
    client.flushdb()
    monkeypatch.setenv("SWITCHBOARD_REDIS_URL", url)
    yield client
    client.flushdb()
    client.close()


def heartbeat(client: redis.Redis, name: str, port: int, replica: int = 0) -> None:
    record = {"name": name, "host": HOST, "replica": replica, "grpc": "127.0.0.1:1", "metrics_port": port, "pid": 1}
    client.set(keys.service_key(name, f"{HOST}-{port}"), json.dumps(record), ex=60)


def sb(*args: str) -> int:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    return int(exited.value.code or 0)


def test_top_reads_every_service_and_shows_one_that_does_not_answer(
    heartbeats: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = CollectorRegistry()
    registry.register(Growing())
    port, silent = free_port(), free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        heartbeat(heartbeats, "filter", port)
        heartbeat(heartbeats, "router", silent)
        assert sb("top", "--interval", "0.2", "--iterations", "2") == 0
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    frames = capsys.readouterr().out.split("\n\nsb top")
    assert len(frames) == 2
    for frame in frames:
        assert "2 service processes" in frame
        # Four calls in (20 ms, 60 ms]: p50 the 2nd, p95 the 3.8th.
        assert next(line for line in frame.splitlines() if line.startswith("filter ")).split()[1:7] == [
            "-", "-", "40", "ms", "58", "ms"
        ]  # fmt: skip
        rows = [line.split(maxsplit=2) for line in frame.splitlines()[-2:]]
        assert rows == [
            ["filter", f"http://127.0.0.1:{port}/metrics", "ok"],
            ["router", f"http://127.0.0.1:{silent}/metrics", "NO ANSWER (ConnectError)"],
        ]
        assert next(line for line in frame.splitlines() if line.startswith(keys.TURNS)).split()[:2] == [keys.TURNS, "5"]
        assert "dead letters 1 (+0)" in frame
        assert "\x1b" not in frame  # not a terminal: nothing redrawn


def test_top_says_so_when_no_service_runs(heartbeats: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    assert sb("top", "--iterations", "1") == 1
    error = capsys.readouterr().err
    assert error.startswith("sb: no service is running") and error.count("\n") == 1


def test_top_says_so_when_redis_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHBOARD_REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    assert sb("top", "--iterations", "1") == 1
    error = capsys.readouterr().err
    assert error.startswith("sb: cannot reach Redis at redis://:***@127.0.0.1:") and "hunter2" not in error


def test_top_refuses_an_interval_that_is_no_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert sb("top", "--interval", "0") == 2
    assert "--interval" in capsys.readouterr().err
