"""Run the whole stack on this machine: `python -m switchboard.stack up|start|stop|wait`.

`up` starts a `redis-server` of its own on a free port (unless `SWITCHBOARD_REDIS_URL` names one),
then the services of the Procfile, under the stack's supervisor (`switchboard.supervisor`), in the
foreground: a process that dies is started again while the others keep serving; Ctrl-C stops
everything. `--replicas router=2,filter=2` (or `SWITCHBOARD_REPLICAS`) runs several replicas of the
filter, router or planner. `start` runs `up` in the background, logging to the state directory, and
returns once every replica reports healthy. `stop` stops a stack started that way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import redis

from switchboard import keys
from switchboard.errors import ConfigurationError
from switchboard.secrets import read_or_create_secret
from switchboard.settings import PROJECT_ROOT, SERVICE_NAMES, CommonSettings
from switchboard.status import redacted
from switchboard.streams import process_alive
from switchboard.supervisor import Program, Record, RestartHook, Supervisor, parse_replicas, plan, read_procfile

STACK_PID = "stack.pid"
SUPERVISOR_STATE = "supervisor.json"
REDIS_URL_FILE = "redis.url"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_config(port: int, data: Path, logfile: Path, password: str) -> str:
    """The configuration of the stack's Redis: loopback only, its data in the state directory, and a
    password (so another local process cannot read or append to the streams)."""
    lines = {
        "port": str(port),
        "bind": "127.0.0.1",
        "protected-mode": "yes",
        "dir": str(data),
        "appendonly": "yes",
        "save": '""',
        "logfile": str(logfile),
        "requirepass": password,
    }
    return "".join(f"{key} {value}\n" for key, value in lines.items())


def prepare_redis(state_dir: Path, password: str) -> tuple[Program, str]:
    """The stack's own redis-server as a supervised program, keeping its data (append-only file) in the
    state directory, on a free port; and its URL.

    Its configuration holds the password, so it is written to a file only its owner can read rather
    than passed on the command line, where any process could see it."""
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed: run `make setup` (it installs Debian's redis-server)")
    data = state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = state_dir / "redis.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(redis_config(port, data, state_dir / "logs" / "redis.log", password))
    os.chmod(config, 0o600)
    return Program("redis", ("redis-server", str(config))), f"redis://127.0.0.1:{port}/0"


def accepts_connections(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    return check


def record_restart(redis_url: str, password: str | None) -> RestartHook:
    """Write the restarts to `keys.RESTARTS`, where `sb status` reads them (best effort: a Redis that is
    itself restarting gets them once it answers again)."""

    def record(records: Mapping[str, Record]) -> None:
        restarted = {
            label: json.dumps(
                {"restarts": what.restarts, "last_exit": what.last_exit, "last_exit_unix": what.last_exit_unix}
            )
            for label, what in records.items()
            if what.restarts
        }
        if not restarted:
            return
        extra = {"password": password} if password else {}
        client = redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0, **extra)
        try:
            pipe = client.pipeline(transaction=False)
            for label, body in restarted.items():
                pipe.hset(keys.RESTARTS, label, body)
            pipe.execute()
        finally:
            client.close()

    return record


def up(settings: CommonSettings) -> int:
    """Run Redis (if needed) and every service replica in the foreground, each restarted if it dies,
    until interrupted."""
    state = settings.state_dir
    (state / "logs").mkdir(parents=True, exist_ok=True)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    read_or_create_secret(settings.token_path)

    try:
        procfile = read_procfile((PROJECT_ROOT / "Procfile").read_text())
        shared, programs = plan(
            procfile,
            parse_replicas(settings.replicas),
            {name: settings.addr(name) for name in procfile},
            {name: settings.metrics_port(name) for name in procfile},
        )
    except ConfigurationError as exc:
        sys.exit(f"cannot start the stack: {exc}")

    ready: dict[str, Callable[[], bool]] = {}
    redis_url = os.environ.get("SWITCHBOARD_REDIS_URL", "")
    password = settings.redis_password()
    if not redis_url:
        password = read_or_create_secret(settings.redis_password_path)
        redis_program, redis_url = prepare_redis(state, password)
        programs.insert(0, redis_program)
        ready["redis"] = accepts_connections(int(urlsplit(redis_url).port or 0))
    (state / REDIS_URL_FILE).write_text(redis_url + "\n")

    env = {
        **os.environ,
        **shared,
        "SWITCHBOARD_STATE_DIR": str(state),
        "SWITCHBOARD_REDIS_URL": redis_url,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    }
    print(f"Switchboard: redis {redacted(redis_url)}, state in {state}", flush=True)
    # The token itself is never printed: this output may go to a log file.
    print(f"API http://127.0.0.1:{settings.http_port}  bearer token in {settings.token_path}", flush=True)
    supervisor = Supervisor(
        programs,
        cwd=PROJECT_ROOT,
        env=env,
        on_restart=record_restart(redis_url, password),
        state_file=settings.run_dir / SUPERVISOR_STATE,
        ready=ready,
    )

    async def supervise() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, supervisor.stop)
        await supervisor.run()

    asyncio.run(supervise())
    return 0


def start(settings: CommonSettings, timeout: float) -> int:
    """`up` in the background; returns when every service is healthy, or fails with the log's tail."""
    pid_file = settings.run_dir / STACK_PID
    if _alive(pid_file):
        print(f"already running (pid {pid_file.read_text().strip()}); `make stop` first", file=sys.stderr)
        return 1
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.log_dir / "stack.log"
    (settings.state_dir / REDIS_URL_FILE).unlink(missing_ok=True)  # so no stale Redis is polled
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "switchboard.stack", "up", "--replicas", settings.replicas],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    print(f"starting (pid {process.pid}); log: {log_path}", flush=True)
    code = wait_healthy(settings, timeout, process)
    if code != 0:
        print(_tail(log_path), file=sys.stderr)
        stop(settings)
        return code
    print(f"API http://127.0.0.1:{settings.http_port}; bearer token in {settings.token_path} (`sb` reads it)")
    return 0


def wait_healthy(settings: CommonSettings, timeout: float, process: subprocess.Popen[bytes] | None = None) -> int:
    """Wait, showing progress, until every replica of every service reports SERVING."""
    from switchboard.status import collect_status

    try:
        counts = parse_replicas(settings.replicas)
    except ConfigurationError as exc:
        print(f"cannot start the stack: {exc}", file=sys.stderr)
        return 1
    expected = sum(counts.get(name, 1) for name in SERVICE_NAMES)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            print(f"the stack exited with code {process.returncode}", file=sys.stderr)
            return 1
        url_file = settings.state_dir / REDIS_URL_FILE
        if url_file.exists():
            status = collect_status(url_file.read_text().strip(), settings.redis_password())
            healthy = sorted(s["name"] for s in status["services"] if s["healthy"])
            line = f"healthy: {', '.join(healthy) or 'none yet'} ({len(healthy)}/{expected})"
            if line != last:
                print(line, flush=True)
                last = line
            if len(healthy) >= expected and set(healthy) >= set(SERVICE_NAMES):
                return 0
        time.sleep(0.5)
    print(f"not all services were healthy within {timeout:.0f}s", file=sys.stderr)
    return 1


def stop(settings: CommonSettings) -> int:
    pid_file = settings.run_dir / STACK_PID
    if not _alive(pid_file):
        print("not running")
        pid_file.unlink(missing_ok=True)
        return 0
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.2)
    if process_alive(pid):
        # The supervisor did not stop in time: kill it and every program it started (each runs in a
        # process group of its own).
        os.killpg(pid, signal.SIGKILL)
        for child in _supervised_pids(settings.run_dir / SUPERVISOR_STATE):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print("stopped")
    return 0


def _supervised_pids(state_file: Path) -> list[int]:
    try:
        records = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [int(r["pid"]) for r in records.values() if isinstance(r, dict) and r.get("pid")]


def _alive(pid_file: Path) -> bool:
    try:
        return process_alive(int(pid_file.read_text()))
    except (FileNotFoundError, ValueError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m switchboard.stack", description=__doc__)
    parser.add_argument("command", choices=["up", "start", "stop", "wait"])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for health (start, wait)")
    parser.add_argument(
        "--replicas", default="", help="replicas per service, as `filter=2,router=2,planner=2` (up, start)"
    )
    args = parser.parse_args()
    settings = CommonSettings()
    if args.replicas:
        settings = settings.model_copy(update={"replicas": args.replicas})
    if args.command == "up":
        sys.exit(up(settings))
    if args.command == "start":
        sys.exit(start(settings, args.timeout))
    if args.command == "wait":
        sys.exit(wait_healthy(settings, args.timeout))
    sys.exit(stop(settings))


if __name__ == "__main__":
    main()
