"""The Grafana dashboards: generated, complete, concrete, and reading only metrics that exist."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest
import yaml

from switchboard import dashboards
from tests.observability.catalogue import (
    COMPOSE,
    DASHBOARD_DIR,
    GRAFANA_PROVISIONING,
    PROMETHEUS_METRICS,
    identifiers,
    load_yaml,
    recording_rules,
    require_tool,
    rules,
    sample_names,
)

# Grafana's own variables, which Grafana fills in before the query reaches Prometheus. Dashboard
# variables ($stage, ...) would make a panel's query depend on a choice made in the UI.
GRAFANA_VARIABLES = frozenset({"$__rate_interval", "$__interval", "$__range"})
PANEL_KINDS = frozenset({"timeseries", "stat", "table", "bargauge"})
UNITS = frozenset({"s", "reqps", "ops", "short", "percentunit"})


def committed() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expression) of every query of every panel."""
    return [
        (name, panel["title"], target["expr"])
        for name, dashboard in committed().items()
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def test_the_committed_dashboards_are_the_generators_output() -> None:
    """`python -m switchboard.dashboards` rewrites them; an edit to the JSON alone fails here."""
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in DASHBOARD_DIR.glob("*.json")}
    assert on_disk == dashboards.rendered_files()


def test_the_generator_writes_into_a_folder(tmp_path: Any) -> None:
    assert dashboards.main([str(tmp_path)]) == 0
    assert {path.name for path in tmp_path.iterdir()} == set(dashboards.rendered_files())


def test_there_are_six_dashboards_with_distinct_uids() -> None:
    loaded = committed()
    assert len(loaded) == 6
    uids = [dashboard["uid"] for dashboard in loaded.values()]
    assert len(set(uids)) == 6
    assert all(dashboard["schemaVersion"] == dashboards.SCHEMA_VERSION for dashboard in loaded.values())


@pytest.mark.parametrize("name", sorted(dashboards.rendered_files()))
def test_every_panel_is_described_and_uses_the_provisioned_datasource(name: str) -> None:
    dashboard = committed()[name]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert dashboard["templating"]["list"] == []
    for panel in panels(dashboard):
        assert isinstance(panel["id"], int)
        assert panel["type"] in PANEL_KINDS
        assert panel["title"].strip()
        assert len(panel["description"]) > 40, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert panel["fieldConfig"]["defaults"]["unit"] in UNITS, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            assert target["expr"].strip()


def test_the_datasource_uid_is_the_provisioned_one() -> None:
    provisioned = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert [source["uid"] for source in provisioned] == [dashboards.DATASOURCE["uid"]]


def test_panels_do_not_overlap() -> None:
    for name, dashboard in committed().items():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            box = panel["gridPos"]
            assert box["x"] + box["w"] <= 24, (name, panel["title"])
            cells = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
            assert not cells & taken, (name, panel["title"])
            taken |= cells


def test_queries_use_only_grafanas_own_variables() -> None:
    for name, title, expr in queries():
        assert set(re.findall(r"\$\{?\w+", expr)) <= GRAFANA_VARIABLES, (name, title, expr)


def test_queries_read_only_metrics_and_rules_that_exist() -> None:
    known = set(sample_names()) | PROMETHEUS_METRICS | set(recording_rules())
    unknown = [
        (name, title, sorted(identifiers(expr) - known)) for name, title, expr in queries() if identifiers(expr) - known
    ]
    assert unknown == []
    assert all(identifiers(expr) for _, _, expr in queries()), "a query that reads nothing"


def test_every_metric_is_on_a_dashboard_or_in_a_rule() -> None:
    """A metric added to switchboard/metrics.py without a panel or rule fails here."""
    read: set[str] = set()
    for _, _, expr in queries():
        read |= identifiers(expr)
    for rule in rules():
        read |= identifiers(rule["expr"])
    names = sample_names()
    shown = {names[sample] for sample in read if sample in names}
    assert set(names.values()) - shown == set()


def test_every_recording_rule_is_read() -> None:
    """A recording rule nobody reads costs an evaluation every 15 seconds for nothing."""
    read: set[str] = set()
    for _, _, expr in queries():
        read |= identifiers(expr)
    for rule in rules():
        read |= identifiers(rule["expr"])
    assert set(recording_rules()) - read == set()


def test_grafana_provisions_the_dashboard_folder_and_its_home_page() -> None:
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    provider = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "dashboards.yml")["providers"][0]
    folder = provider["options"]["path"]
    assert mounts[folder] == "./observability/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(folder + "/")
    assert (DASHBOARD_DIR / home.removeprefix(folder + "/")).is_file()
    assert dashboards.OVERVIEW.filename == home.removeprefix(folder + "/")


def test_every_query_is_valid_promql(tmp_path: Any) -> None:
    """promtool parses each query as a recording rule's expression, Grafana's variables filled in."""
    filled = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
    group = []
    for index, (_, _, expr) in enumerate(queries()):
        for variable, value in filled.items():
            expr = expr.replace(variable, value)
        group.append({"record": f"dashboard:query:{index}", "expr": expr})
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": group}]}))
    result = subprocess.run(
        [require_tool("promtool"), "check", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
