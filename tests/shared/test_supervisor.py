"""The stack's supervisor: what it plans to run, and that it restarts a process that dies while the
others keep running (real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from switchboard.errors import ConfigurationError
from switchboard.settings import CommonSettings, replica_addresses
from switchboard.supervisor import (
    MAX_DELAY_SECONDS,
    Program,
    Record,
    Supervisor,
    parse_replicas,
    plan,
    read_procfile,
    restart_delay,
)

PROCFILE = "toolhost: exec python -m services.toolhost\n\n# a comment\nrouter: exec python -m services.router\n"


def test_procfile_lines_become_commands_without_exec() -> None:
    assert read_procfile(PROCFILE) == {
        "toolhost": ("python", "-m", "services.toolhost"),
        "router": ("python", "-m", "services.router"),
    }


@pytest.mark.parametrize("line", ["router python -m x", "router:", ": python"])
def test_a_procfile_line_that_is_not_name_and_command_is_refused(line: str) -> None:
    with pytest.raises(ConfigurationError, match="line 1"):
        read_procfile(line)


def test_replicas_are_read_and_checked() -> None:
    assert parse_replicas("filter=2, router=3,") == {"filter": 2, "router": 3}
    assert parse_replicas("") == {}
    with pytest.raises(ConfigurationError, match="service=N"):
        parse_replicas("router=0")
    with pytest.raises(ConfigurationError, match="service=N"):
        parse_replicas("router")
    with pytest.raises(ConfigurationError, match="gateway runs as one process"):
        parse_replicas("gateway=2")


def test_each_replica_gets_its_own_ports_and_every_caller_the_list() -> None:
    procfile = read_procfile(PROCFILE)
    addresses = {"toolhost": "127.0.0.1:7315", "router": "127.0.0.1:7314"}
    metrics = {"toolhost": 9315, "router": 9314}
    shared, programs = plan(procfile, {"router": 2}, addresses, metrics)
    assert shared == {"SWITCHBOARD_ROUTER_ADDR": "ipv4:127.0.0.1:7314,127.0.0.1:7324"}
    assert [p.label for p in programs] == ["toolhost", "router", "router#1"]
    assert programs[2].env == {"SWITCHBOARD_REPLICA": "1", "SWITCHBOARD_ROUTER_METRICS_PORT": "9324"}
    assert programs[0].env == {"SWITCHBOARD_REPLICA": "0"}


def test_each_replica_listens_on_its_own_entry_of_the_list() -> None:
    settings = CommonSettings(router_addr="ipv4:127.0.0.1:7314,127.0.0.1:7324", replica=1, bind_host="127.0.0.1")
    assert replica_addresses(settings.router_addr) == ["127.0.0.1:7314", "127.0.0.1:7324"]
    assert settings.own_addr("router") == "127.0.0.1:7324"
    assert settings.grpc_listen("router") == "127.0.0.1:7324"
    assert CommonSettings(router_addr="router:7314").own_addr("router") == "router:7314"


def test_replicas_need_an_address_with_a_port_number() -> None:
    with pytest.raises(ConfigurationError, match="numeric address"):
        plan(
            read_procfile(PROCFILE),
            {"router": 2},
            {"toolhost": "x:1", "router": "router:7314"},
            {"toolhost": 1, "router": 2},
        )
    with pytest.raises(ConfigurationError, match="no such service"):
        plan(read_procfile(PROCFILE), {"planner": 2}, {}, {})


def test_a_replica_whose_port_another_service_has_is_refused() -> None:
    procfile = read_procfile(PROCFILE)
    # The router's second replica would take gRPC port 7324, which the tool host is configured with.
    addresses = {"toolhost": "127.0.0.1:7324", "router": "127.0.0.1:7314"}
    with pytest.raises(ConfigurationError, match=r"router gRPC \(replica 1\) and toolhost gRPC .* port 7324"):
        plan(procfile, {"router": 2}, addresses, {"toolhost": 9315, "router": 9314})
    with pytest.raises(ConfigurationError, match="port 9315"):
        plan(
            procfile, {}, {"toolhost": "127.0.0.1:7315", "router": "127.0.0.1:7314"}, {"toolhost": 9315, "router": 9315}
        )
    # Ports of a named host are not this machine's to check.
    plan(procfile, {}, {"toolhost": "toolhost:7314", "router": "router:7314"}, {"toolhost": 9315, "router": 9314})


def test_restarts_back_off_and_are_capped() -> None:
    delays = [restart_delay(n) for n in range(1, 10)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays)
    assert delays[-1] == MAX_DELAY_SECONDS


def _sleeper() -> tuple[str, ...]:
    return (sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)")


async def _until(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_killed_program_is_restarted_while_the_others_keep_running(tmp_path: Path) -> None:
    restarted: list[dict[str, int]] = []
    supervisor = Supervisor(
        [Program("redis", _sleeper()), Program("router", _sleeper()), Program("router", _sleeper(), replica=1)],
        cwd=tmp_path,
        env=dict(os.environ),
        on_restart=lambda records: restarted.append({label: r.restarts for label, r in records.items()}),
        state_file=tmp_path / "supervisor.json",
    )
    running = asyncio.create_task(supervisor.run())
    try:
        await _until(lambda: len(supervisor.processes) == 3)
        first = {label: process.pid for label, process in supervisor.processes.items()}
        os.kill(first["router#1"], signal.SIGKILL)
        await _until(lambda: supervisor.processes["router#1"].pid != first["router#1"])
        assert restarted == [{"redis": 0, "router": 0, "router#1": 1}]
        record: Record = supervisor.records["router#1"]
        assert record.last_exit == -signal.SIGKILL
        # The others were never touched.
        assert supervisor.processes["redis"].pid == first["redis"]
        assert supervisor.processes["router"].pid == first["router"]
        assert supervisor.processes["redis"].returncode is None
        assert '"restarts": 1' in (tmp_path / "supervisor.json").read_text()
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 30)
    assert all(process.returncode is not None for process in supervisor.processes.values())


async def test_a_program_that_keeps_failing_is_retried_ever_more_slowly(tmp_path: Path) -> None:
    supervisor = Supervisor(
        [Program("router", (sys.executable, "-c", "raise SystemExit(3)"))], cwd=tmp_path, env=dict(os.environ)
    )
    running = asyncio.create_task(supervisor.run())
    try:
        started = time.monotonic()
        # Restarts after 0.5 s, then 1 s: the third start comes no sooner than 1.5 s after the first.
        await _until(lambda: supervisor.records["router"].restarts >= 3)
        assert time.monotonic() - started >= 1.5
        assert supervisor.records["router"].last_exit == 3
    finally:
        supervisor.stop()
        await asyncio.wait_for(running, 30)
