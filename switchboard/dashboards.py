"""Switchboard's Grafana dashboards, generated: `python -m switchboard.dashboards [FOLDER]`.

Six dashboards (overview, failure modes, confirmations, tools, streams, model) are declared here as
data and rendered to the JSON files Grafana provisions from `observability/grafana/dashboards/`. One
declaration keeps their layout, units and data source alike, and `tests/observability/` checks that
the committed files equal what this module renders, so an edit made to the JSON alone fails a test.

Every query names metrics from `switchboard/metrics.py` or recording rules from
`observability/prometheus/rules.yml` (the tests check both), and uses no dashboard variables: the only
template variables are Grafana's `$__rate_interval` and `$__range`, so each panel's query can be run
as it stands against Prometheus. Quantiles and ratios come from recording rules, which Prometheus
evaluates once for every viewer.

This module imports nothing beyond the standard library, so it runs without the project installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
# Grafana 11's dashboard schema (the version compose.yaml runs writes 39 when it saves a dashboard).
SCHEMA_VERSION = 39
FOLDER = Path(__file__).resolve().parent.parent / "observability" / "grafana" / "dashboards"
TAG = "switchboard"
SERVICES_MATCHER = 'job=~"gateway|planner|filter|router|toolhost"'
GRID_WIDTH = 24


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel. `instant` asks for one value at the end of the range (tables, bar
    gauges and stats over `$__range`) rather than a series over time."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel: its kind (timeseries, stat, table, bargauge), what it shows, and its queries."""

    kind: str
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    # A lower bound for the value axis or colour scale; None leaves it to Grafana (scores can be negative).
    minimum: float | None = 0
    # Stat panels: the value from which the panel turns green (below it, red); None keeps it neutral.
    healthy_from: float | None = None


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right and wrapped at Grafana's 24 columns."""

    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    """One dashboard file: its uid, title, what it answers, and its rows."""

    filename: str
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    tags: tuple[str, ...] = field(default=(TAG,))


def _rate(metric: str, by: str) -> str:
    return f"sum by ({by}) (rate({metric}[$__rate_interval]))"


def _over_range(metric: str, by: str) -> str:
    return f"sort_desc(sum by ({by}) (increase({metric}[$__range])))"


def _quantiles(rule_prefix: str, legend: str, selector: str = "") -> tuple[Query, ...]:
    """The p50 and p95 recording rules `<prefix>:p50_5m` and `<prefix>:p95_5m`."""
    return (
        Query(f"{rule_prefix}:p50_5m{selector}", f"{legend} p50"),
        Query(f"{rule_prefix}:p95_5m{selector}", f"{legend} p95"),
    )


OVERVIEW = Dashboard(
    filename="switchboard.json",
    uid="switchboard",
    title="Switchboard — pipeline overview",
    description="Is Switchboard up, how much work goes through it, where the time goes per stage, and how "
    "steps end. The other Switchboard dashboards (links at the top) go into one concern each.",
    rows=(
        Row(
            "Health",
            (
                Panel(
                    "stat",
                    "Replicas up",
                    "Replicas of each service whose metrics endpoint answers Prometheus. Red means none: that "
                    "stage does no work (alert SwitchboardServiceMissing / SwitchboardTargetDown). Check "
                    "`docker compose ps` and the service's log.",
                    "short",
                    (Query(f"sum by (job) (up{{{SERVICES_MATCHER}}})", "{{job}}"),),
                    width=24,
                    height=4,
                    healthy_from=1,
                ),
            ),
        ),
        Row(
            "Throughput",
            (
                Panel(
                    "timeseries",
                    "Turns accepted",
                    "Requests the gateway accepted and published, per second, by API (http, grpc, openai). "
                    "This is the load everything else follows; a drop to zero while people use Switchboard "
                    "points at the gateway or Redis.",
                    "reqps",
                    (Query(_rate("switchboard_turns_accepted_total", "api"), "{{api}}"),),
                    width=6,
                ),
                Panel(
                    "timeseries",
                    "Runs finished by status",
                    "Runs that reached a final status, per second. A rise of failed or refused against "
                    "succeeded says turns go wrong: open the failure-modes dashboard for why.",
                    "ops",
                    (Query(_rate("switchboard_runs_finished_total", "status"), "{{status}}"),),
                    width=6,
                ),
                Panel(
                    "timeseries",
                    "Step outcomes by stage",
                    "Steps by the outcome each stage gave them, per second. Compare stages: steps that the "
                    "filter ranks but the tool host never runs wait for a person or were refused.",
                    "ops",
                    (Query(_rate("switchboard_step_outcomes_total", "stage, outcome"), "{{stage}} {{outcome}}"),),
                    width=6,
                ),
                Panel(
                    "timeseries",
                    "Requests turned away",
                    "Requests the gateway refused for a while, per second, by API and reason: busy (too much "
                    "work waits in the streams) or redis (Redis does not answer). Busy means the stages behind "
                    "the gateway are too few for the load: scale them.",
                    "reqps",
                    (Query(_rate("switchboard_requests_refused_total", "api, reason"), "{{api}} {{reason}}"),),
                    width=6,
                ),
            ),
        ),
        Row(
            "Where the time goes",
            (
                Panel(
                    "timeseries",
                    "Stage wait p50 / p95",
                    "How long work waited before a stage started on it, by stage and queue (a stream, or "
                    "rpc for a gRPC stage waiting for its model), over 5 minutes. Long waits with short work "
                    "mean too few replicas: scale the stage (docs/deployment.md, Scaling workers).",
                    "s",
                    _quantiles("stage_queue:switchboard_stage_wait_seconds", "{{stage}} ({{queue}})"),
                ),
                Panel(
                    "timeseries",
                    "Stage work p50 / p95",
                    "How long a stage worked on one message or call, waiting excluded, over 5 minutes. The "
                    "planner and router are bound by the model; a rise there with flat prompt sizes points at "
                    "CPU contention (set SWITCHBOARD_<STAGE>_THREADS when several replicas share a host).",
                    "s",
                    _quantiles("stage:switchboard_stage_work_seconds", "{{stage}}"),
                ),
            ),
        ),
    ),
)

FAILURE_MODES = Dashboard(
    filename="switchboard-failure-modes.json",
    uid="switchboard-failure-modes",
    title="Switchboard — failure modes",
    description="How turns go wrong: each FailureMode (switchboard/metrics.py) by the stage that caught it, "
    "whether that stage then mended it or not.",
    rows=(
        Row(
            "Rates",
            (
                Panel(
                    "timeseries",
                    "Failure modes by mode",
                    "Failure modes caught per second, summed over stages, over 5 minutes. One mode rising "
                    "alone names the weakness (e.g. invented_argument: the model fills values the request "
                    "lacks); alert SwitchboardFailureModeFrequent fires when a mode comes with most turns.",
                    "ops",
                    (Query("sum by (mode) (stage_mode:switchboard_failure_modes:rate5m)", "{{mode}}"),),
                ),
                Panel(
                    "timeseries",
                    "Failure modes by stage and mode",
                    "The same rates by the stage that caught them: tells which service to look at (its log "
                    "carries the run id of each case).",
                    "ops",
                    (Query("stage_mode:switchboard_failure_modes:rate5m", "{{stage}} {{mode}}"),),
                ),
            ),
        ),
        Row(
            "Totals",
            (
                Panel(
                    "table",
                    "Failure modes over the time range",
                    "How many times each stage caught each mode in the dashboard's time range, most first. "
                    "Zero rows are modes a stage can catch that did not happen.",
                    "short",
                    (Query(_over_range("switchboard_failure_modes_total", "stage, mode"), instant=True),),
                    height=10,
                ),
                Panel(
                    "bargauge",
                    "Failure modes per accepted turn",
                    "Caught failure modes divided by turns accepted, over the time range. Above 1 a mode "
                    "comes with every turn on average (a step can catch several): start with the longest bar.",
                    "short",
                    (
                        Query(
                            "sort_desc(sum by (mode) (increase(switchboard_failure_modes_total[$__range]))"
                            " / scalar(sum(increase(switchboard_turns_accepted_total[$__range]))))",
                            "{{mode}}",
                            instant=True,
                        ),
                    ),
                    height=10,
                ),
            ),
        ),
    ),
)

CONFIRMATIONS = Dashboard(
    filename="switchboard-confirmations.json",
    uid="switchboard-confirmations",
    title="Switchboard — confirmations",
    description="The person in the loop: which steps wait for a person, what they decide, how long they take, "
    "and calls the tool host refused for their approval.",
    rows=(
        Row(
            "Now",
            (
                Panel(
                    "stat",
                    "Steps waiting for a person",
                    "Steps waiting for a confirmation right now. A number that only grows means nobody "
                    "answers: the steps expire at their deadline (`sb confirm` or the web page decides).",
                    "short",
                    # Every service exports this unlabelled gauge; only the gateway sets it, so take the max.
                    (Query("max(switchboard_confirmations_waiting)", "waiting"),),
                    width=8,
                    height=5,
                ),
                Panel(
                    "stat",
                    "Allowed share",
                    "Share of decided confirmations that the person allowed (as proposed or edited) over the "
                    "time range. Low means the planner proposes what people do not want: read the rejected "
                    "runs.",
                    "percentunit",
                    (
                        Query(
                            "sum(increase(switchboard_confirmation_decisions_total"
                            '{decision=~"allowed|allowed_edited"}[$__range]))'
                            " / sum(increase(switchboard_confirmation_decisions_total[$__range]))",
                            "allowed",
                            instant=True,
                        ),
                    ),
                    width=8,
                    height=5,
                ),
                Panel(
                    "stat",
                    "Approval refusals over the time range",
                    "Calls the tool host refused because their approval was missing, forged, mismatched, "
                    "expired, replayed or insufficient. Anything but a rare expired one may be an attempt to "
                    "bypass the person (alert SwitchboardApprovalRefused): read the tool host's audit log.",
                    "short",
                    (Query("sum(increase(switchboard_approval_refusals_total[$__range]))", "refused", True),),
                    width=8,
                    height=5,
                ),
            ),
        ),
        Row(
            "Requests and decisions",
            (
                Panel(
                    "timeseries",
                    "Confirmations requested by tier",
                    "Steps that started waiting for a person, per second, by tier (confirm: a yes; typed: the "
                    "person types the target). Many typed confirmations for one kind of request suggest a "
                    "policy rule worth revisiting.",
                    "ops",
                    (Query(_rate("switchboard_confirmations_requested_total", "tier"), "{{tier}}"),),
                ),
                Panel(
                    "timeseries",
                    "Decisions by decision and scope",
                    "What people decided, per second: allowed, allowed_edited, rejected or expired, with the "
                    "scope of an allowance (once, session, always). Many expired: people do not see the "
                    "requests in time.",
                    "ops",
                    (
                        Query(
                            _rate("switchboard_confirmation_decisions_total", "decision, scope"),
                            "{{decision}} {{scope}}",
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Time people take, and refusals",
            (
                Panel(
                    "timeseries",
                    "Time to decide p50 / p95",
                    "How long a step waited for its person, by decision, over the last hour (decisions are "
                    "few, so a longer window than other panels). A p95 near the deadline (10 minutes by "
                    "default) means people miss requests.",
                    "s",
                    (
                        Query("decision:switchboard_confirmation_wait_seconds:p50_1h", "{{decision}} p50"),
                        Query("decision:switchboard_confirmation_wait_seconds:p95_1h", "{{decision}} p95"),
                    ),
                    width=8,
                ),
                Panel(
                    "timeseries",
                    "Approval refusals by reason",
                    "Refused approvals per second over 5 minutes, by reason. forged, mismatched, replayed or "
                    "ungranted point at something presenting approvals it was not given.",
                    "ops",
                    (Query("reason:switchboard_approval_refusals:rate5m", "{{reason}}"),),
                    width=8,
                ),
                Panel(
                    "timeseries",
                    "Credential refusals by method",
                    "gRPC calls refused for a missing or wrong credential, per second, by method. The services "
                    "present the internal key to each other, so any refusal is a caller without it: a "
                    "misconfigured client, or something probing the services.",
                    "ops",
                    (Query(_rate("switchboard_auth_refusals_total", "method"), "{{method}}"),),
                    width=8,
                ),
            ),
        ),
    ),
)

TOOLS = Dashboard(
    filename="switchboard-tools.json",
    uid="switchboard-tools",
    title="Switchboard — tools",
    description="The tool calls the tool host ran on its MCP servers: how many, how they ended, and how long "
    "they took.",
    rows=(
        Row(
            "Calls",
            (
                Panel(
                    "timeseries",
                    "Calls by tool and outcome",
                    "Tool calls per second by tool and outcome (succeeded, failed, refused, interrupted).",
                    "ops",
                    (Query(_rate("switchboard_tool_calls_total", "tool, outcome"), "{{tool}} {{outcome}}"),),
                ),
                Panel(
                    "bargauge",
                    "Top tools over the time range",
                    "The ten tools called most in the dashboard's time range.",
                    "short",
                    (
                        Query(
                            "topk(10, sum by (tool) (increase(switchboard_tool_calls_total[$__range])))",
                            "{{tool}}",
                            instant=True,
                        ),
                    ),
                ),
            ),
        ),
        Row(
            "Errors and duration",
            (
                Panel(
                    "timeseries",
                    "Error ratio per tool",
                    "Share of a tool's calls that failed, over 5 minutes (0 while none failed). A tool that "
                    "fails often takes arguments the planner gets wrong, or its MCP server is broken: read "
                    "the tool host's log for that tool.",
                    "percentunit",
                    (Query("tool:switchboard_tool_calls:error_ratio_5m", "{{tool}}"),),
                ),
                Panel(
                    "timeseries",
                    "Call duration p50 / p95 per tool",
                    "Time a call took on its MCP server, over 5 minutes. A slow tool holds a tool host "
                    "worker: scale the tool host if its stream lag grows too.",
                    "s",
                    _quantiles("tool:switchboard_tool_call_duration_seconds", "{{tool}}"),
                ),
            ),
        ),
        Row(
            "Totals",
            (
                Panel(
                    "table",
                    "Calls over the time range by tool and outcome",
                    "How many calls each tool had, by outcome, in the dashboard's time range, most first.",
                    "short",
                    (Query(_over_range("switchboard_tool_calls_total", "tool, outcome"), instant=True),),
                    width=24,
                    height=10,
                ),
            ),
        ),
    ),
)

STREAMS = Dashboard(
    filename="switchboard-streams.json",
    uid="switchboard-streams",
    title="Switchboard — streams",
    description="The Redis streams between the stages: their backlogs, what the consumer groups have not "
    "read or finished, the dead letters, and Redis outages.",
    rows=(
        Row(
            "Backlog",
            (
                Panel(
                    "timeseries",
                    "Lag per group",
                    "Entries added to a stream that its consumer group has not been delivered yet. Lag that "
                    "keeps growing means the group's stage cannot keep up: scale it (alerts "
                    "SwitchboardStreamLagHigh and SwitchboardStreamLagGrowing).",
                    "short",
                    (Query("stream_group:switchboard_stream_lag:max", "{{stream}} → {{group}}"),),
                    width=8,
                ),
                Panel(
                    "timeseries",
                    "Pending per group",
                    "Messages delivered to a group and not acknowledged yet: in work now, or left by a "
                    "replica that crashed (another claims them after the stage's claim timeout).",
                    "short",
                    (Query("stream_group:switchboard_stream_pending:max", "{{stream}} → {{group}}"),),
                    width=8,
                ),
                Panel(
                    "timeseries",
                    "Stream length",
                    "Entries kept in each stream. Entries every group acknowledged are trimmed, so a length "
                    "that only grows means a group holds back old entries.",
                    "short",
                    (Query("stream:switchboard_stream_length:max", "{{stream}}"),),
                    width=8,
                ),
            ),
        ),
        Row(
            "Dead letters and waiting",
            (
                Panel(
                    "timeseries",
                    "Dead letters per second",
                    "Messages a stage gave up on (malformed, failing on every attempt, or never finishing) "
                    "and kept on the dead-letter stream, by the stream and group they came from. Any is a "
                    "bug or a poisoned message: `sb status` shows the newest (alert SwitchboardDeadLetters).",
                    "ops",
                    (Query("stream_group:switchboard_dead_letters:rate5m", "{{stream}} → {{group}}"),),
                    width=8,
                ),
                Panel(
                    "stat",
                    "Dead-letter stream length",
                    "Entries on the dead-letter stream (the newest 1000 are kept). Nothing reads it "
                    "automatically: look at them with `sb status`, fix the cause, then delete them.",
                    "short",
                    (Query('max(switchboard_stream_length{stream="sb:dead-letters"})', "dead letters"),),
                    width=8,
                ),
                Panel(
                    "timeseries",
                    "Wait in stream p95",
                    "How long messages waited in their stream before a stage started on them, by stream and "
                    "the stage reading it, over 5 minutes.",
                    "s",
                    (
                        Query(
                            'stage_queue:switchboard_stage_wait_seconds:p95_5m{queue!="rpc"}',
                            "{{queue}} → {{stage}}",
                        ),
                    ),
                    width=8,
                ),
            ),
        ),
        Row(
            "Redis",
            (
                Panel(
                    "timeseries",
                    "Redis outages",
                    "Times a loop found Redis unreachable and waited for it, per second, by loop. The "
                    "services ride out a Redis restart; repeated outages point at Redis itself: "
                    "`docker compose logs redis`.",
                    "ops",
                    (Query(_rate("switchboard_redis_outages_total", "loop"), "{{loop}}"),),
                ),
                Panel(
                    "timeseries",
                    "Run record writes by stage",
                    "Writes of runs' records to Redis, per second, by the stage that made them: Redis' share "
                    "of the work. Writes rising faster than turns accepted mean more rewrites per run.",
                    "ops",
                    (Query(_rate("switchboard_run_record_writes_total", "stage"), "{{stage}}"),),
                ),
            ),
        ),
    ),
)

MODEL = Dashboard(
    filename="switchboard-model.json",
    uid="switchboard-model",
    title="Switchboard — model",
    description="The local llama.cpp model the planner and router call, and the filter's retrieval in front of it.",
    rows=(
        Row(
            "Tokens",
            (
                Panel(
                    "timeseries",
                    "Prompt tokens per call p50 / p95",
                    "Tokens in a prompt, by the stage calling the model, over 5 minutes. Prompts near the "
                    "context size push older turns out (failure mode context_eviction).",
                    "short",
                    _quantiles("stage:switchboard_model_prompt_tokens", "{{stage}}"),
                ),
                Panel(
                    "timeseries",
                    "Generated tokens per call p50 / p95",
                    "Tokens the model generated for one call, by stage, over 5 minutes. Long generations "
                    "under a grammar usually mean the model loops inside a string.",
                    "short",
                    _quantiles("stage:switchboard_model_generated_tokens", "{{stage}}"),
                ),
            ),
        ),
        Row(
            "Speed",
            (
                Panel(
                    "timeseries",
                    "Prompt evaluation p50 / p95",
                    "Time the model spent evaluating the part of a prompt not already in its cache, by stage.",
                    "s",
                    _quantiles("stage:switchboard_model_prompt_eval_seconds", "{{stage}}"),
                    width=8,
                ),
                Panel(
                    "timeseries",
                    "Generation p50 / p95",
                    "Time the model spent generating, grammar sampling included, by stage.",
                    "s",
                    _quantiles("stage:switchboard_model_generation_seconds", "{{stage}}"),
                    width=8,
                ),
                Panel(
                    "timeseries",
                    "Generated tokens per second",
                    "Generation speed, by stage, over 5 minutes. It falls when replicas share too few cores: "
                    "set SWITCHBOARD_PLANNER_THREADS / SWITCHBOARD_ROUTER_THREADS or add a host.",
                    "short",
                    (Query("stage:switchboard_model_generated_tokens_per_second:rate5m", "{{stage}}"),),
                    width=8,
                ),
            ),
        ),
        Row(
            "Retrieval (filter)",
            (
                Panel(
                    "timeseries",
                    "Top score p50 / p95",
                    "The best candidate tool's similarity to a step, over 5 minutes. Falling scores mean "
                    "requests unlike the tool descriptions: new kinds of request, or a catalogue change.",
                    "short",
                    _quantiles("switchboard_retrieval_top_score", "top score"),
                    width=8,
                    minimum=None,
                ),
                Panel(
                    "timeseries",
                    "Score margin p50 / p95",
                    "How far the best candidate lies above the second. Small margins leave the choice to the "
                    "router's model, where wrong tools come from.",
                    "short",
                    _quantiles("switchboard_retrieval_score_margin", "margin"),
                    width=8,
                    minimum=None,
                ),
                Panel(
                    "timeseries",
                    "No tool fits",
                    "Share of steps for which the filter found no tool close enough, over 5 minutes. High "
                    "means people ask for things no tool does, or the threshold is too strict.",
                    "percentunit",
                    (Query("switchboard_retrieval_decisions:no_tool_fits_ratio_5m", "no tool fits"),),
                    width=8,
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (OVERVIEW, FAILURE_MODES, CONFIRMATIONS, TOOLS, STREAMS, MODEL)


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.healthy_from is not None:
        steps = [{"color": "red", "value": None}, {"color": "green", "value": panel.healthy_from}]
    else:
        steps = [{"color": "blue", "value": None}]
    defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            "lineWidth": 1,
            "fillOpacity": 10,
            "showPoints": "never",
            "spanNulls": False,
        }
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "timeseries":
        return {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind == "stat":
        return {
            "colorMode": "background" if panel.healthy_from is not None else "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": reduce,
            "textMode": "value_and_name",
        }
    if panel.kind == "bargauge":
        return {
            "displayMode": "gradient",
            "orientation": "horizontal",
            "reduceOptions": reduce,
            "showUnfilled": True,
        }
    if panel.kind == "table":
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"]}}
    raise ValueError(f"unknown panel kind {panel.kind!r}")


def _targets(panel: Panel) -> list[dict[str, Any]]:
    targets = []
    for index, query in enumerate(panel.queries):
        targets.append(
            {
                "datasource": dict(DATASOURCE),
                "expr": query.expr,
                "legendFormat": query.legend,
                "refId": chr(ord("A") + index),
                "range": not query.instant,
                "instant": query.instant,
                "format": "table" if panel.kind == "table" else "time_series",
            }
        )
    return targets


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(DATASOURCE),
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": panel.height},
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
        "targets": _targets(panel),
    }
    if panel.kind == "table":
        # An instant query's table has a Time column that says nothing; the value column is the total.
        rendered["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": {"Value": "total"}}}
        ]
    return rendered


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model, panels numbered and placed row by row."""
    panels: list[dict[str, Any]] = []
    panel_id = 0
    y = 0
    for row in dashboard.rows:
        panel_id += 1
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"x": 0, "y": y, "w": GRID_WIDTH, "h": 1},
                "panels": [],
            }
        )
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            panel_id += 1
            panels.append(_panel(panel, panel_id, x, y))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "templating": {"list": []},
        "annotations": {"list": []},
        # A drop-down of every Switchboard dashboard, keeping the time range when moving between them.
        "links": [
            {
                "type": "dashboards",
                "title": "Switchboard",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "panels": panels,
    }


def rendered_files() -> dict[str, str]:
    """Each dashboard's file name and the exact text written for it."""
    return {
        dashboard.filename: json.dumps(render(dashboard), indent=2, ensure_ascii=False) + "\n"
        for dashboard in DASHBOARDS
    }


def write(folder: Path) -> list[Path]:
    """Write every dashboard into `folder`; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_files().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m switchboard.dashboards [FOLDER]`: write the dashboards (by default into the project's
    observability/grafana/dashboards)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1:
        print("usage: python -m switchboard.dashboards [FOLDER]", file=sys.stderr)
        return 2
    for path in write(Path(args[0]) if args else FOLDER):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
