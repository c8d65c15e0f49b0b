"""`sb top`'s arithmetic: what two scrapes of every service's `/metrics` say about the time between them.

`sb top` reads each running service's Prometheus endpoint (found through its heartbeat record in
Redis) every few seconds. This module turns two consecutive scrapes into a view and the view into
text: per stage, the wait and work quantiles of the interval (from the histograms' bucket increases,
as Prometheus's `histogram_quantile` over `rate` does) and its throughput and errors; per stream, its
length, and what each group holds and has not been delivered yet; confirmations waiting, dead letters,
turns accepted, runs finished and model tokens per second. Nothing here does I/O (the command in
`switchboard/cli.py` scrapes and prints), so all of it is tested on strings.

Counters and histograms are summed over replicas; a series whose value fell between two scrapes
belongs to a process that restarted, and counts from zero, as Prometheus's `increase` counts it.
The stream and confirmation gauges are not summed: every service reports the same reading of Redis
(each service's heartbeat refreshes the stream gauges), so the highest reading is the one shown.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from switchboard.settings import SERVICE_NAMES

# The catalogue's names (switchboard/metrics.py) as their samples are exposed; tests/shared/test_top.py
# checks each against the catalogue.
STAGE_WAIT = "switchboard_stage_wait_seconds"
STAGE_WORK = "switchboard_stage_work_seconds"
STAGE_ERRORS = "switchboard_stage_errors_total"
TURNS_ACCEPTED = "switchboard_turns_accepted_total"
RUNS_FINISHED = "switchboard_runs_finished_total"
GENERATED_TOKENS = "switchboard_model_generated_tokens"
PROMPT_TOKENS = "switchboard_model_prompt_tokens"
STREAM_LENGTH = "switchboard_stream_length"
STREAM_PENDING = "switchboard_stream_pending"
STREAM_LAG = "switchboard_stream_lag"
CONFIRMATIONS_WAITING = "switchboard_confirmations_waiting"
DEAD_LETTERS = "switchboard_dead_letters_total"

# The two quantiles shown of each latency.
QUANTILES = (0.5, 0.95)

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]  # a sample's name and its labels, sorted


def labels_key(labels: Mapping[str, str]) -> Labels:
    """Labels in a fixed order, fit to be part of a dictionary key."""
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Scrape:
    """One service's `/metrics`, parsed: every sample's value, and which samples are gauges (read as
    they are) rather than counters or histogram parts (read as their increase)."""

    samples: Mapping[SeriesKey, float]
    gauges: frozenset[str] = frozenset()


def parse_scrape(text: str) -> Scrape:
    """Parse Prometheus's text exposition format. `_created` samples (when a counter began) are left
    out: they are timestamps, not counts."""
    samples: dict[SeriesKey, float] = {}
    gauges: set[str] = set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            samples[(sample.name, labels_key(sample.labels))] = float(sample.value)
            if family.type in ("gauge", "unknown"):
                gauges.add(sample.name)
    return Scrape(samples, frozenset(gauges))


def increases(before: Scrape, after: Scrape) -> dict[SeriesKey, float]:
    """How much each counter and histogram series grew from `before` to `after`. A series that is new
    was created since (at 0, before its first count); one whose value fell belongs to a process that
    restarted in between, and everything it counted since is its increase."""
    grown: dict[SeriesKey, float] = {}
    for key, value in after.samples.items():
        if key[0] in after.gauges:
            continue
        previous = before.samples.get(key, 0.0)
        grown[key] = value - previous if value >= previous else value
    return grown


def bucket_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The `q`-quantile of a histogram given as `(upper bound, cumulative count)` pairs, interpolated
    linearly within the bucket it falls in, as Prometheus's `histogram_quantile` does; None when the
    histogram counted nothing. A quantile in the `+Inf` bucket is the highest finite bound: the
    histogram says no more than that it is above it."""
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for index, (upper, cumulative) in enumerate(ordered):
        if cumulative >= rank:
            if math.isinf(upper):
                return ordered[index - 1][0] if index > 0 else None
            if index == 0 and upper <= 0:
                return upper
            inside = cumulative - below
            if inside <= 0:
                return upper
            return lower + (upper - lower) * (rank - below) / inside
        lower, below = upper, cumulative
    return None


@dataclass(frozen=True)
class Endpoint:
    """Where one running service replica serves its metrics."""

    service: str
    replica: int
    url: str

    @property
    def label(self) -> str:
        """`filter`, or `filter#1` for a second replica, as `sb status` names them."""
        return self.service if self.replica == 0 else f"{self.service}#{self.replica}"


def endpoint_from_heartbeat(record: Mapping[str, object], this_host: str) -> Endpoint | None:
    """The metrics endpoint of the service a heartbeat record describes (`switchboard.service`), or
    None for a record that names no metrics port.

    A service serves its metrics on its bind host, the loopback interface unless configured otherwise,
    and its heartbeat records the name of the machine it runs on, not the interface. One on this
    machine is therefore read on 127.0.0.1 (where one bound to every interface answers too); one on
    another machine or container by its host name."""
    port = record.get("metrics_port")
    if not isinstance(port, int) or port <= 0:
        return None
    host = str(record.get("host") or "")
    address = "127.0.0.1" if not host or host == this_host else host
    replica = record.get("replica", 0)
    return Endpoint(
        service=str(record.get("name", "?")),
        replica=replica if isinstance(replica, int) else 0,
        url=f"http://{address}:{port}/metrics",
    )


@dataclass(frozen=True)
class StageRow:
    """One stage over one interval: wait and work quantiles in seconds (None: nothing observed),
    messages or calls finished per second, and errors in the interval and in all."""

    stage: str
    wait: tuple[float | None, ...]
    work: tuple[float | None, ...]
    per_second: float
    errors: float
    errors_total: float


@dataclass(frozen=True)
class StreamRow:
    """One stream: its length and, per consumer group, `(group, pending, lag)`; None where no service
    reports the gauge."""

    stream: str
    length: float | None
    groups: tuple[tuple[str, float | None, float | None], ...]


@dataclass(frozen=True)
class EndpointState:
    """Whether one endpoint answered this time, and if not why."""

    endpoint: Endpoint
    error: str = ""
    # It answered now but not at the previous scrape, so nothing of it is in this interval yet.
    new: bool = False


@dataclass(frozen=True)
class TopView:
    """Everything one refresh of `sb top` shows."""

    seconds: float
    stages: tuple[StageRow, ...]
    streams: tuple[StreamRow, ...]
    confirmations_waiting: float | None
    dead_letters_total: float
    dead_letters: float
    turns_per_second: float
    runs_per_second: float
    runs_by_status: tuple[tuple[str, float], ...]
    generated_tokens_per_second: float
    prompt_tokens_per_second: float
    endpoints: tuple[EndpointState, ...] = field(default=())


def _stage_order(stage: str) -> tuple[int, str]:
    """Stages in the order a request meets them (the services' order), then any other by name."""
    service = stage.split(".", 1)[0]
    return (SERVICE_NAMES.index(service) if service in SERVICE_NAMES else len(SERVICE_NAMES), stage)


def _sum_by(values: Mapping[SeriesKey, float], name: str, *by: str) -> dict[tuple[str, ...], float]:
    """The samples called `name`, summed by the labels `by` (those missing counting as empty)."""
    summed: dict[tuple[str, ...], float] = defaultdict(float)
    for (sample, labels), value in values.items():
        if sample == name:
            named = dict(labels)
            summed[tuple(named.get(label, "") for label in by)] += value
    return summed


def _quantiles(grown: Mapping[SeriesKey, float], histogram: str, stage: str) -> tuple[float | None, ...]:
    buckets = _sum_by(grown, f"{histogram}_bucket", "stage", "le")
    pairs = [(float(le), count) for (name, le), count in buckets.items() if name == stage]
    return tuple(bucket_quantile(q, pairs) for q in QUANTILES)


def build_view(
    before: Mapping[Endpoint, Scrape],
    after: Mapping[Endpoint, Scrape | str],
    seconds: float,
) -> TopView:
    """The view of the `seconds` between two rounds of scrapes. `after` maps each endpoint found now to
    its scrape or to why it did not answer; an endpoint missing from `before` has no interval yet and
    adds only its gauges and totals."""
    grown: dict[SeriesKey, float] = defaultdict(float)
    totals: dict[SeriesKey, float] = defaultdict(float)
    gauges: dict[SeriesKey, float] = {}
    states: list[EndpointState] = []
    for endpoint, scrape in after.items():
        if isinstance(scrape, str):
            states.append(EndpointState(endpoint, error=scrape))
            continue
        previous = before.get(endpoint)
        states.append(EndpointState(endpoint, new=previous is None))
        if previous is not None:
            for key, value in increases(previous, scrape).items():
                grown[key] += value
        for key, value in scrape.samples.items():
            if key[0] in scrape.gauges:
                gauges[key] = max(value, gauges.get(key, value))
            else:
                totals[key] += value
    per_second = 1.0 / seconds if seconds > 0 else 0.0

    stages = {s for (s,) in _sum_by(totals, f"{STAGE_WAIT}_count", "stage")}
    stages |= {s for (s,) in _sum_by(totals, f"{STAGE_WORK}_count", "stage")}
    work_done = _sum_by(grown, f"{STAGE_WORK}_count", "stage")
    errors = _sum_by(grown, STAGE_ERRORS, "stage")
    errors_total = _sum_by(totals, STAGE_ERRORS, "stage")
    stage_rows = tuple(
        StageRow(
            stage=stage,
            wait=_quantiles(grown, STAGE_WAIT, stage),
            work=_quantiles(grown, STAGE_WORK, stage),
            per_second=work_done.get((stage,), 0.0) * per_second,
            errors=errors.get((stage,), 0.0),
            errors_total=errors_total.get((stage,), 0.0),
        )
        for stage in sorted(stages, key=_stage_order)
        if stage
    )

    lengths = _sum_by(gauges, STREAM_LENGTH, "stream")
    pending = _sum_by(gauges, STREAM_PENDING, "stream", "group")
    lag = _sum_by(gauges, STREAM_LAG, "stream", "group")
    stream_names = {s for (s,) in lengths} | {s for s, _ in pending} | {s for s, _ in lag}
    stream_rows = tuple(
        StreamRow(
            stream=stream,
            length=lengths.get((stream,)),
            groups=tuple(
                (group, pending.get((stream, group)), lag.get((stream, group)))
                for group in sorted({g for s, g in (*pending, *lag) if s == stream})
            ),
        )
        for stream in sorted(stream_names)
    )

    waiting = _sum_by(gauges, CONFIRMATIONS_WAITING)
    runs = _sum_by(grown, RUNS_FINISHED, "status")
    return TopView(
        seconds=seconds,
        stages=stage_rows,
        streams=stream_rows,
        confirmations_waiting=waiting.get((), None),
        dead_letters_total=sum(_sum_by(totals, DEAD_LETTERS).values()),
        dead_letters=sum(_sum_by(grown, DEAD_LETTERS).values()),
        turns_per_second=sum(_sum_by(grown, TURNS_ACCEPTED).values()) * per_second,
        runs_per_second=sum(runs.values()) * per_second,
        runs_by_status=tuple(sorted((status, count) for (status,), count in runs.items() if count > 0)),
        generated_tokens_per_second=sum(_sum_by(grown, f"{GENERATED_TOKENS}_sum").values()) * per_second,
        prompt_tokens_per_second=sum(_sum_by(grown, f"{PROMPT_TOKENS}_sum").values()) * per_second,
        endpoints=tuple(sorted(states, key=lambda s: (_stage_order(s.endpoint.service), s.endpoint.replica))),
    )


def format_seconds(value: float | None) -> str:
    """A latency as a person reads it: `-` for none, `0.4 ms`, `12 ms`, `1.25 s`, `2m05s`."""
    if value is None:
        return "-"
    if value < 0.01:
        return f"{value * 1000:.1f} ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m{rest:02d}s"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Columns as wide as their widest cell; the first `left` aligned left, the rest right (numbers)."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *rows)
    ]


def render(view: TopView, title: str) -> str:
    """The view as text: the stages' table, the streams' table, the totals, and each endpoint's state."""
    lines = [title, ""]
    stage_rows = [
        [
            row.stage,
            *(format_seconds(v) for v in row.wait),
            *(format_seconds(v) for v in row.work),
            f"{row.per_second:.2f}",
            f"{row.errors:g} ({row.errors_total:g})",
        ]
        for row in view.stages
    ]
    quantiles = [f"{q * 100:g}" for q in QUANTILES]
    header = ["stage", *(f"wait p{q}" for q in quantiles), *(f"work p{q}" for q in quantiles), "done/s", "errors (all)"]
    lines += _table(header, stage_rows) if stage_rows else ["no stage has reported yet"]
    lines.append("")
    stream_rows: list[list[str]] = []
    for stream in view.streams:
        groups = stream.groups or (("", None, None),)
        for i, (group, pending, lag) in enumerate(groups):
            first = i == 0
            name, length = (stream.stream, _count(stream.length)) if first else ("", "")
            stream_rows.append([name, length, group or "-", _count(pending), _count(lag)])
    if stream_rows:
        lines += _table(["stream", "length", "group", "pending", "lag"], stream_rows, left=1)
        lines.append("")
    per_second = 1.0 / view.seconds if view.seconds > 0 else 0.0
    statuses = ", ".join(f"{status} {count * per_second:.2f}" for status, count in view.runs_by_status)
    lines += [
        f"confirmations waiting {_count(view.confirmations_waiting)}   "
        f"dead letters {view.dead_letters_total:g} (+{view.dead_letters:g})",
        f"turns accepted {view.turns_per_second:.2f}/s   runs finished {view.runs_per_second:.2f}/s"
        + (f" ({statuses})" if statuses else ""),
        f"model tokens {view.generated_tokens_per_second:.1f}/s generated, "
        f"{view.prompt_tokens_per_second:.1f}/s in prompts",
        "",
    ]
    endpoint_rows = [
        [
            state.endpoint.label,
            state.endpoint.url,
            f"NO ANSWER ({state.error})" if state.error else ("new, from the next refresh" if state.new else "ok"),
        ]
        for state in view.endpoints
    ]
    lines += _table(["service", "metrics", "state"], endpoint_rows, left=3)
    return "\n".join(lines)
