"""The stack as `make up` runs it, for fault tests: `python -m switchboard.stack up`, which starts a Redis
of its own (append-only file on) and every service under the stack's supervisor, on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from switchboard.settings import SERVICE_NAMES
from switchboard.status import collect_status
from switchboard.supervisor import REPLICA_PORT_STEP, parse_replicas
from tests.conftest import free_port
from tests.stack.harness import PROJECT_ROOT, Stack


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class SupervisedStack(Stack):
    """Like `Stack`, but one supervisor process runs Redis and the services, restarting any that dies."""

    def __init__(
        self, state_dir: Path, allowed_roots: list[Path], settings: dict[str, str] | None = None, replicas: str = ""
    ) -> None:
        super().__init__("", state_dir, allowed_roots, {**(settings or {}), "SWITCHBOARD_REPLICAS": replicas})
        del self.env["SWITCHBOARD_REDIS_URL"]  # the supervisor starts a Redis of its own
        counts = parse_replicas(replicas)
        self.expected = sum(counts.get(name, 1) for name in SERVICE_NAMES)
        self._spread_ports(counts)
        self.supervisor: subprocess.Popen[bytes] | None = None

    def _spread_ports(self, counts: dict[str, int]) -> None:
        """Ports for every service and replica that are free and all different: replica i of a service
        listens on its first port + 10·i, which a port drawn at random for another service may be."""
        taken = {self.http_port}
        for name in SERVICE_NAMES:
            for setting in (f"SWITCHBOARD_{name.upper()}_ADDR", f"SWITCHBOARD_{name.upper()}_METRICS_PORT"):
                while True:
                    port = free_port()
                    ports = {port + REPLICA_PORT_STEP * i for i in range(counts.get(name, 1))}
                    if not ports & taken and all(_free(p) for p in ports):
                        break
                taken |= ports
                self.env[setting] = f"127.0.0.1:{port}" if setting.endswith("_ADDR") else str(port)

    def start(self, timeout: float = 300.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / "stack.log", "wb") as log:
            self.supervisor = subprocess.Popen(
                [sys.executable, "-m", "switchboard.stack", "up"],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        url_file = self.state_dir / "redis.url"
        while time.monotonic() < deadline:
            if self.supervisor.poll() is not None:
                raise RuntimeError(f"the stack exited with {self.supervisor.returncode}:\n{self.log_tail('stack')}")
            if url_file.exists() and not self.redis_url:
                self.redis_url = url_file.read_text().strip()
                self.env["SWITCHBOARD_REDIS_URL"] = self.redis_url  # for `sb`, which asks this Redis
            if self.redis_url and len(self.healthy()) >= self.expected:
                return
            time.sleep(0.25)
        raise RuntimeError("services not healthy in time:\n" + self.log_tail("stack", 80))

    def healthy(self) -> list[str]:
        """The services answering SERVING, one entry per replica."""
        status = collect_status(self.redis_url, self.redis_password)
        return sorted(s["name"] for s in status["services"] if s["healthy"])

    def wait_healthy(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.healthy()) < self.expected:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"only {self.healthy()} healthy after {timeout:.0f}s:\n{self.log_tail('stack', 80)}"
                )
            time.sleep(0.25)

    @property
    def redis_password(self) -> str:
        return (self.state_dir / "redis.password").read_text().strip()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, password=self.redis_password)

    def pids(self) -> dict[str, int]:
        """Each supervised program's current pid, by label (`redis`, `router`, `planner#1`, …)."""
        records = json.loads((self.state_dir / "run" / "supervisor.json").read_text())
        return {label: int(record["pid"]) for label, record in records.items()}

    def kill(self, label: str) -> int:
        """SIGKILL one program, as a crash would end it; returns the pid it had."""
        pid = self.pids()[label]
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, label: str, old_pid: int, timeout: float = 180.0) -> int:
        """Wait until the supervisor has started `label` again and every service is healthy; its new pid."""
        deadline = time.monotonic() + timeout
        while self.pids().get(label, old_pid) == old_pid:
            if time.monotonic() > deadline:
                raise AssertionError(f"{label} was not restarted in {timeout:.0f}s:\n{self.log_tail('stack', 80)}")
            time.sleep(0.1)
        self.wait_healthy(timeout)
        return self.pids()[label]

    def stop(self) -> None:
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
            try:
                self.supervisor.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.supervisor.kill()
