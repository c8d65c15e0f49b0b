"""What the observability tests compare: the metric catalogue, the rules and the PromQL in dashboards.

PromQL is read with a small tokenizer, not a parser: label values (strings) and range selectors are
removed, and what remains of identifiers is either a metric (`switchboard_…`, `up`), a recording rule
(a name with a colon), or a function, keyword or label name, none of which starts with `switchboard_`
or holds a colon.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from switchboard import metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "observability" / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TEST = PROMETHEUS_DIR / "rules.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD_DIR = ROOT / "observability" / "grafana" / "dashboards"
GRAFANA_PROVISIONING = ROOT / "observability" / "grafana" / "provisioning"
COMPOSE = ROOT / "compose.yaml"
PROCFILE = ROOT / "Procfile"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
OTEL_COLLECTOR = ROOT / "observability" / "otel-collector.yaml"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# Metrics Prometheus makes itself for every target.
PROMETHEUS_METRICS = frozenset({"up"})


def require_tool(name: str) -> str:
    """The path of a command the tests need; a missing one fails the test (never skips it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; `make setup` installs the Debian package that has it")
    return path


def sample_names() -> dict[str, str]:
    """Every sample name Switchboard's metrics export, mapped to the metric it belongs to.

    A counter `x` exports `x_total`; a histogram `x` exports `x_bucket`, `x_count` and `x_sum`; a gauge
    exports its own name. (`_created` samples exist too, but nothing should query them.)"""
    names: dict[str, str] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            if family.type == "counter":
                names[f"{family.name}_total"] = family.name
            elif family.type == "histogram":
                for suffix in ("_bucket", "_count", "_sum"):
                    names[family.name + suffix] = family.name
            else:
                names[family.name] = family.name
    return names


def identifiers(expr: str) -> set[str]:
    """The metric and recording-rule names a PromQL expression reads."""
    bare = _RANGE.sub("", _STRING.sub('""', expr))
    # Drop the contents of label matchers ({stage="x"}) and grouping clauses (by (stage, le)): label
    # names are identifiers too, but never metric names.
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    return {
        name
        for name in _IDENTIFIER.findall(bare)
        if ":" in name or name.startswith("switchboard_") or name in PROMETHEUS_METRICS
    }


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    """Every rule of rules.yml, recording and alerting."""
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def recording_rules() -> dict[str, str]:
    """Recording rule name → its expression."""
    return {rule["record"]: rule["expr"] for rule in rules() if "record" in rule}


def alert_rules() -> dict[str, str]:
    """Alert name → its expression."""
    return {rule["alert"]: rule["expr"] for rule in rules() if "alert" in rule}
