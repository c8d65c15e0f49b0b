"""Run the whole stack on this machine: `python -m switchboard.stack up|start|stop|wait`.

`up` starts a `redis-server` of its own on a free port (unless `SWITCHBOARD_REDIS_URL` names one),
then the five services with honcho (a Procfile runner), in the foreground; Ctrl-C stops everything.
`start` runs `up` in the background, logging to the state directory, and returns once every service
reports healthy. `stop` stops a stack started that way.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from switchboard.secrets import read_or_create_secret
from switchboard.settings import PROJECT_ROOT, SERVICE_NAMES, CommonSettings
from switchboard.status import redacted

STACK_PID = "stack.pid"
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


def start_redis(state_dir: Path, password: str) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server of the stack's own, keeping its data (append-only file) in the state directory.

    Its configuration holds the password, so it is written to a file only its owner can read rather
    than passed on the command line, where any process could see it."""
    data = state_dir / "redis"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = state_dir / "redis.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(redis_config(port, data, state_dir / "logs" / "redis.log", password))
    os.chmod(config, 0o600)
    try:
        process = subprocess.Popen(
            ["redis-server", str(config)],
            start_new_session=True,  # Ctrl-C must not stop Redis before the services have let go of it
        )
    except FileNotFoundError:
        sys.exit("redis-server is not installed: run `make setup` (it installs Debian's redis-server)")
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, url
        except OSError:
            if process.poll() is not None:
                sys.exit(f"redis-server exited at start; see {state_dir / 'logs' / 'redis.log'}")
            time.sleep(0.1)
    process.terminate()
    sys.exit("redis-server did not accept connections within 20s")


def up(settings: CommonSettings) -> int:
    """Run Redis (if needed) and the five services in the foreground until interrupted."""
    state = settings.state_dir
    (state / "logs").mkdir(parents=True, exist_ok=True)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    read_or_create_secret(settings.token_path)

    redis_process = None
    redis_url = os.environ.get("SWITCHBOARD_REDIS_URL", "")
    if not redis_url:
        redis_process, redis_url = start_redis(state, read_or_create_secret(settings.redis_password_path))
    (state / REDIS_URL_FILE).write_text(redis_url + "\n")

    env = {
        **os.environ,
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
    honcho = subprocess.Popen(
        [sys.executable, "-m", "honcho", "-f", str(PROJECT_ROOT / "Procfile"), "-d", str(PROJECT_ROOT), "start"],
        env=env,
        # Its own session: Ctrl-C reaches only this launcher, which asks honcho once to stop everything.
        start_new_session=True,
    )
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if honcho.poll() is None and not stopping:
            stopping = True
            print("stopping…", flush=True)
            honcho.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = honcho.wait()
    if redis_process is not None:
        redis_process.terminate()
        redis_process.wait(timeout=30)
    return code


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
            [sys.executable, "-m", "switchboard.stack", "up"],
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
    """Wait, showing progress, until all five services report SERVING."""
    from switchboard.status import collect_status

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            print(f"the stack exited with code {process.returncode}", file=sys.stderr)
            return 1
        url_file = settings.state_dir / REDIS_URL_FILE
        if url_file.exists():
            status = collect_status(url_file.read_text().strip(), settings.redis_password())
            healthy = sorted({s["name"] for s in status["services"] if s["healthy"]})
            line = f"healthy: {', '.join(healthy) or 'none yet'} ({len(healthy)}/{len(SERVICE_NAMES)})"
            if line != last:
                print(line, flush=True)
                last = line
            if len(healthy) == len(SERVICE_NAMES):
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
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.2)
    if _pid_alive(pid):
        os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    print("stopped")
    return 0


def _alive(pid_file: Path) -> bool:
    try:
        return _pid_alive(int(pid_file.read_text()))
    except (FileNotFoundError, ValueError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (FileNotFoundError, IndexError):
        return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m switchboard.stack", description=__doc__)
    parser.add_argument("command", choices=["up", "start", "stop", "wait"])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for health (start, wait)")
    args = parser.parse_args()
    settings = CommonSettings()
    if args.command == "up":
        sys.exit(up(settings))
    if args.command == "start":
        sys.exit(start(settings, args.timeout))
    if args.command == "wait":
        sys.exit(wait_healthy(settings, args.timeout))
    sys.exit(stop(settings))


if __name__ == "__main__":
    main()
