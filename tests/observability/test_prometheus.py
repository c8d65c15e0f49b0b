"""Prometheus' configuration and rules: promtool accepts them, every alert is exercised both ways, and
every name they read exists."""

from __future__ import annotations

import subprocess

import pytest

from tests.observability.catalogue import (
    PROMETHEUS_CONFIG,
    PROMETHEUS_DIR,
    PROMETHEUS_METRICS,
    RULES,
    RULES_TEST,
    alert_rules,
    identifiers,
    load_yaml,
    recording_rules,
    require_tool,
    sample_names,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120
    )


def test_promtool_accepts_the_config() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_tests_pass() -> None:
    result = promtool("test", "rules", RULES_TEST.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_config_loads_the_rules() -> None:
    assert load_yaml(PROMETHEUS_CONFIG)["rule_files"] == [RULES.name]
    assert load_yaml(RULES_TEST)["rule_files"] == [RULES.name]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a case in rules.test.yml where it fires and one where it does not."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(alert_rules())
    assert alerts - firing == set(), "alerts never made to fire"
    assert alerts - quiet == set(), "alerts never shown quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


@pytest.mark.parametrize("kind", ["recording", "alert"])
def test_rules_read_only_defined_names(kind: str) -> None:
    exprs = recording_rules() if kind == "recording" else alert_rules()
    known = set(sample_names()) | PROMETHEUS_METRICS | set(recording_rules())
    unknown = {name: sorted(identifiers(expr) - known) for name, expr in exprs.items() if identifiers(expr) - known}
    assert unknown == {}


def test_every_rule_reads_something() -> None:
    """A guard on the tokenizer the name checks rely on: it finds a name in every rule."""
    for name, expr in {**recording_rules(), **alert_rules()}.items():
        assert identifiers(expr), name


def test_identifiers_reads_metrics_and_rules_but_not_labels_or_functions() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (stage, le) (rate(switchboard_stage_work_seconds_bucket{stage="a:b"}'
        "[$__rate_interval]))) / on() group_left() stage:switchboard_stage_work_seconds:p95_5m and up"
    )
    assert identifiers(expr) == {
        "switchboard_stage_work_seconds_bucket",
        "stage:switchboard_stage_work_seconds:p95_5m",
        "up",
    }


def test_stream_gauges_are_taken_as_max_over_targets() -> None:
    """Every service publishes the same stream gauges; summing them would count each stream once per
    replica."""
    for name, expr in recording_rules().items():
        for gauge in ("switchboard_stream_length", "switchboard_stream_pending", "switchboard_stream_lag"):
            if gauge in identifiers(expr):
                assert expr.startswith("max by"), name


def test_scrape_jobs_use_the_services_metrics_ports() -> None:
    from switchboard.settings import DEFAULT_METRICS_PORTS

    jobs = load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    ports = {job["job_name"]: [sd["port"] for sd in job["dns_sd_configs"]] for job in jobs}
    names = {job["job_name"]: [n for sd in job["dns_sd_configs"] for n in sd["names"]] for job in jobs}
    assert ports == {name: [port] for name, port in DEFAULT_METRICS_PORTS.items()}
    assert names == {name: [name] for name in DEFAULT_METRICS_PORTS}
