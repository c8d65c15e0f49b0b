"""Compose, the Procfile, the Dockerfile and Prometheus' scrape jobs describe the same services, and
Compose runs them the way docs/deployment.md says: pinned images, gRPC health checks, loopback-only
ports, traces to the collector, Redis persistent and with its password kept off command lines."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.catalogue import (
    COMPOSE,
    DOCKERFILE,
    OTEL_COLLECTOR,
    PROCFILE,
    PROMETHEUS_CONFIG,
    ROOT,
    load_yaml,
    require_tool,
)

# The Compose services that are not Switchboard services, each for a reason:
#   redis            the streams' store (an upstream image; not scraped, not in the Procfile, where
#                    `make up` starts a local redis-server itself)
#   prometheus, grafana, otel-collector
#                    the watchers (upstream images); `make up` runs without them
#   secrets          a one-shot that makes the install's secrets and exits; under `make up` the
#                    services make their secrets themselves
# Written out rather than derived (say, "every service without a build"), so that a new service of
# either kind has to be placed here on purpose; a test below checks each still exists.
INFRASTRUCTURE = frozenset({"redis", "prometheus", "grafana", "otel-collector", "secrets"})
PINNED = re.compile(r"^[\w./-]+:v?\d+\.\d+\.\d+(-[\w.]+)?$")


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """compose.yaml as `docker-compose config` resolves it with every host setting at its default.

    The command runs with an empty environment file and a DOCKER_HOST nothing listens on, so it can
    neither pick up a developer's .env nor reach a Docker engine."""
    folder = tmp_path_factory.mktemp("compose")
    env_file = folder / "empty.env"
    env_file.write_text("")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        "DOCKER_HOST": f"unix://{folder / 'no-engine.sock'}",
    }
    result = subprocess.run(
        [require_tool("docker-compose"), "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


def switchboard_services(compose: dict[str, Any]) -> set[str]:
    return set(compose["services"]) - INFRASTRUCTURE


def procfile_names() -> set[str]:
    lines = [line for line in PROCFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {line.split(":", 1)[0].strip() for line in lines}


def scrape_jobs() -> set[str]:
    return {job["job_name"] for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}


def dockerfile_targets() -> dict[str, str]:
    """Each `FROM app AS <name>` target and the text of its stage."""
    text = DOCKERFILE.read_text()
    stages = re.split(r"(?m)^(?=FROM )", text)
    return {match.group(1): stage for stage in stages if (match := re.match(r"FROM app AS (\w+)", stage)) is not None}


def test_the_infrastructure_services_exist(compose: dict[str, Any]) -> None:
    assert INFRASTRUCTURE <= set(compose["services"])


def test_compose_procfile_dockerfile_and_prometheus_name_the_same_services(compose: dict[str, Any]) -> None:
    services = switchboard_services(compose)
    assert services == {"gateway", "planner", "filter", "router", "toolhost"}
    assert procfile_names() == services
    assert scrape_jobs() == services
    assert set(dockerfile_targets()) == services


def test_each_service_builds_its_own_target(compose: dict[str, Any]) -> None:
    for name in switchboard_services(compose):
        build = compose["services"][name]["build"]
        assert Path(build["dockerfile"]) == Path("docker/Dockerfile")
        assert build["target"] == name


def test_health_checks_ask_the_grpc_health_service_on_the_services_port(compose: dict[str, Any]) -> None:
    """Compose's check and the image's HEALTHCHECK both run switchboard.healthcheck (a grpc.health.v1
    Check) against the port the service's address says it listens on."""
    targets = dockerfile_targets()
    for name in switchboard_services(compose):
        service = compose["services"][name]
        port = service["environment"][f"SWITCHBOARD_{name.upper()}_ADDR"].rsplit(":", 1)[1]
        command = ["python", "-m", "switchboard.healthcheck", f"127.0.0.1:{port}"]
        assert service["healthcheck"]["test"] == ["CMD", *command], name
        assert f"CMD {json_list(command)}" in targets[name], name
    assert "health_pb2_grpc.HealthStub" in (ROOT / "switchboard" / "status.py").read_text()
    assert "grpc_healthy" in (ROOT / "switchboard" / "healthcheck.py").read_text()


def json_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def test_every_service_sends_traces_to_the_collector(compose: dict[str, Any]) -> None:
    receiver = load_yaml(OTEL_COLLECTOR)["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    for name in switchboard_services(compose):
        service = compose["services"][name]
        endpoint = service["environment"]["SWITCHBOARD_OTLP_ENDPOINT"]
        assert endpoint.split(":")[0] == "otel-collector", name
        assert endpoint.rsplit(":", 1)[1] == receiver.rsplit(":", 1)[1], name
        assert "otel-collector" in service["depends_on"], name


def test_the_collector_pipeline_uses_only_declared_components() -> None:
    config = load_yaml(OTEL_COLLECTOR)
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(config.get(kind, {})), kind
        # The memory limiter must see spans before anything buffers them.
        assert pipeline["processors"][0] == "memory_limiter"


def test_images_are_pinned_to_exact_versions(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "image" in service:
            assert PINNED.match(service["image"]), (name, service["image"])
    text = DOCKERFILE.read_text()
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", text)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base.group(1))
    stages = re.findall(r"(?m)^FROM (\S+) AS (\w+)$", text)
    names = {stage for _, stage in stages}
    assert all(image == "${PYTHON_IMAGE}" or image in names for image, _ in stages), stages


def test_the_services_run_as_uid_1000() -> None:
    app = re.split(r"(?m)^(?=FROM )", DOCKERFILE.read_text())
    stage = next(part for part in app if part.startswith("FROM ${PYTHON_IMAGE} AS app"))
    assert "useradd --uid 1000" in stage
    assert re.search(r"(?m)^USER switchboard$", stage)


def test_published_ports_listen_on_loopback_by_default(compose: dict[str, Any]) -> None:
    published = []
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published.append(name)
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert sorted(published) == ["gateway", "grafana", "prometheus"]


def test_redis_keeps_an_append_only_file_and_its_password_off_command_lines(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    script = " ".join(redis["entrypoint"])
    assert "--appendonly yes" in script
    assert "--appendfsync everysec" in script
    assert "--requirepass" not in script, "the password would show in the process list"
    assert "requirepass" in script and "redis.password" in script
    assert "REDISCLI_AUTH=" in " ".join(redis["healthcheck"]["test"])
    assert any(volume.endswith(":/data:rw") or volume.endswith(":/data") for volume in redis["volumes"])
    assert "ports" not in redis


def test_grafana_takes_its_admin_password_from_the_secrets_service(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    path = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert path in " ".join(compose["services"]["secrets"]["command"])
    # Grafana sees its own password's volume, never the Switchboard secrets.
    assert not any(volume.startswith("secrets:") for volume in grafana["volumes"])
    assert grafana["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
