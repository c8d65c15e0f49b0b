"""Fixtures shared by every test layer: a clean environment and a real redis-server on a free port."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's SWITCHBOARD_* settings."""
    for name in list(os.environ):
        if name.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session", autouse=True)
def tracing() -> None:
    """A real tracer provider, so spans have ids and traceparents propagate as in the services."""
    from switchboard.telemetry import setup_tracing

    setup_tracing("tests")


REDIS_PASSWORD = secrets.token_urlsafe(24)


class RedisProcess:
    """A redis-server of a test's own on a free port, with a password as the stack's has, that can be
    stopped and started again on the same port and files. With `appendonly` it keeps an append-only
    file, as the stack's Redis does, so its data survives a restart."""

    def __init__(self, folder: Path, *, appendonly: bool = False) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("redis-server is not installed; `make setup` installs it")
        self.port = free_port()
        self.config = folder / "redis.conf"
        self.config.write_text(
            f'port {self.port}\nbind 127.0.0.1\nsave ""\nappendonly {"yes" if appendonly else "no"}\n'
            f"dir {folder}\nrequirepass {REDIS_PASSWORD}\n"
        )
        self.config.chmod(0o600)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL, which carries the password."""
        return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and return once it accepts connections (it may still be loading its data)."""
        self.process = subprocess.Popen(["redis-server", str(self.config)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    pytest.fail("the test redis-server did not start")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop it with SIGTERM, as a service manager does: Redis writes its append-only file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A running `RedisProcess`; yields its URL."""
    server = RedisProcess(folder)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test session's own Redis; never the machine's shared one."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on an emptied database."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=False)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]
