"""Start the five services as separate processes, with a redis-server of their own, for tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from switchboard.settings import SERVICE_NAMES
from switchboard.status import collect_status
from tests.conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Stack:
    """Five service processes on free ports, sharing one Redis and one state directory."""

    def __init__(
        self, redis_url: str, state_dir: Path, allowed_roots: list[Path], settings: dict[str, str] | None = None
    ) -> None:
        self.redis_url = redis_url
        self.state_dir = state_dir
        self.http_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")},
            "SWITCHBOARD_REDIS_URL": redis_url,
            "SWITCHBOARD_STATE_DIR": str(state_dir),
            "SWITCHBOARD_HTTP_PORT": str(self.http_port),
            "SWITCHBOARD_ALLOWED_ROOTS": os.pathsep.join(str(root) for root in allowed_roots),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            **(settings or {}),
        }
        for name in SERVICE_NAMES:
            self.env[f"SWITCHBOARD_{name.upper()}_ADDR"] = f"127.0.0.1:{free_port()}"
            self.env[f"SWITCHBOARD_{name.upper()}_METRICS_PORT"] = str(free_port())
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = state_dir / "logs"

    def start(self, timeout: float = 300.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in SERVICE_NAMES:
            with open(self.logs / f"{name}.log", "wb") as log:
                self.processes[name] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    cwd=PROJECT_ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{self.log_tail(name)}")
            healthy = {s["name"] for s in collect_status(self.redis_url)["services"] if s["healthy"]}
            if healthy >= set(SERVICE_NAMES):
                return
            time.sleep(0.25)
        raise RuntimeError("services not healthy in time:\n" + "\n".join(self.log_tail(n) for n in SERVICE_NAMES))

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    def log_tail(self, name: str, lines: int = 40) -> str:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def metric(self, service: str, name: str) -> float:
        """The sum of a counter's samples on a service's Prometheus endpoint (0 when it has none yet)."""
        port = self.env[f"SWITCHBOARD_{service.upper()}_METRICS_PORT"]
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        )

    @property
    def token(self) -> str:
        return (self.state_dir / "token").read_text().strip()

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.http_port}", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def sb(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run the real `sb` command against this stack."""
        return subprocess.run(
            [sys.executable, "-m", "switchboard.cli", *args],
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
