"""The stack's own process supervisor: one process per service replica (and Redis), each restarted with
backoff when it dies, while the others keep serving.

A Procfile runner stops every process when one exits, so one crashed worker would be an outage until
someone restarted the stack by hand. Here a process that exits without being asked to is started again
after a delay that doubles with each quick failure (0.5 s up to 30 s) and starts over once the process
has stayed up for a while. Redis is one of the supervised programs: it is started first, stopped last,
and never stopped because a service died. Each restart is counted in Redis (`keys.RESTARTS`, which
`sb status` shows) and in `<state dir>/run/supervisor.json`.

The plan of what to run is pure (`plan`): the Procfile's commands, and for a service run as several
replicas, one program per replica, each listening on its own port (`replica_ports`), with every caller
given the list of all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from switchboard.errors import ConfigurationError

log = logging.getLogger(__name__)

# The first restart comes quickly; each further quick failure doubles the wait, up to the cap.
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0
# A process that stayed up this long is healthy again: its next failure restarts it quickly.
STABLE_AFTER_SECONDS = 30.0
# How long a process has to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 20.0
# The ports of replica i are the first replica's plus i times this (7313, 7323, … for the filter).
REPLICA_PORT_STEP = 10
# Services that can run as several replicas on one machine: the gateway owns the published HTTP
# port and the tool host owns the MCP servers and their files, so each runs once.
SCALABLE = ("filter", "router", "planner")


@dataclass(frozen=True)
class Program:
    """One process to keep running."""

    name: str  # the service (or "redis")
    command: tuple[str, ...]
    replica: int = 0
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How logs and the restart record name it: `router`, or `router#1` for a second replica."""
        return self.name if self.replica == 0 else f"{self.name}#{self.replica}"


def read_procfile(text: str) -> dict[str, tuple[str, ...]]:
    """The `name: command` lines of a Procfile, in order; a leading `exec` is dropped (the supervisor
    runs the command itself, without a shell)."""
    commands: dict[str, tuple[str, ...]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, command = line.partition(":")
        argv = shlex.split(command)
        if not sep or not name.strip() or not argv:
            raise ConfigurationError(f"Procfile line {number} is not `name: command`: {line!r}")
        commands[name.strip()] = tuple(argv[1:] if argv[0] == "exec" else argv)
    return commands


def parse_replicas(text: str) -> dict[str, int]:
    """`filter=2,router=2` → {"filter": 2, "router": 2}; a clear error for anything else."""
    counts: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, number = part.partition("=")
        name = name.strip()
        if not sep or not number.strip().isdigit() or int(number) < 1:
            raise ConfigurationError(f"replicas are written `service=N` with N ≥ 1, as in `router=2`: {part!r}")
        if int(number) > 1 and name not in SCALABLE:
            raise ConfigurationError(f"{name} runs as one process; only {', '.join(SCALABLE)} can have replicas")
        counts[name] = int(number)
    return counts


def replica_ports(port: int, count: int) -> list[int]:
    return [port + REPLICA_PORT_STEP * i for i in range(count)]


def plan(
    procfile: Mapping[str, tuple[str, ...]],
    replicas: Mapping[str, int],
    addresses: Mapping[str, str],
    metrics_ports: Mapping[str, int],
) -> tuple[dict[str, str], list[Program]]:
    """What to run: the environment every process shares (the address lists of replicated services) and
    the programs, one per replica. `addresses` and `metrics_ports` are each service's configured ones."""
    unknown = sorted(set(replicas) - set(procfile))
    if unknown:
        raise ConfigurationError(f"no such service in the Procfile: {', '.join(unknown)}")
    shared: dict[str, str] = {}
    programs: list[Program] = []
    for name, command in procfile.items():
        count = replicas.get(name, 1)
        if count > 1:
            host, _, port = addresses[name].rpartition(":")
            if not host.replace(".", "").isdigit() or not port.isdigit():
                raise ConfigurationError(
                    f"replicas of {name} on one machine need a numeric address, not {addresses[name]!r}"
                )
            listed = ",".join(f"{host}:{p}" for p in replica_ports(int(port), count))
            shared[f"SWITCHBOARD_{name.upper()}_ADDR"] = f"ipv4:{listed}"
        for replica, metrics in enumerate(replica_ports(metrics_ports[name], count)):
            env = {"SWITCHBOARD_REPLICA": str(replica)}
            if count > 1:
                env[f"SWITCHBOARD_{name.upper()}_METRICS_PORT"] = str(metrics)
            programs.append(Program(name, command, replica, env))
    _refuse_shared_ports(procfile, replicas, addresses, metrics_ports)
    return shared, programs


def _refuse_shared_ports(
    procfile: Mapping[str, tuple[str, ...]],
    replicas: Mapping[str, int],
    addresses: Mapping[str, str],
    metrics_ports: Mapping[str, int],
) -> None:
    """Raise `ConfigurationError` if two processes would listen on one port: replica i takes its
    service's ports + 10·i, which may land on another service's configured port."""
    taken: dict[int, str] = {}
    for name in procfile:
        count = replicas.get(name, 1)
        host, _, grpc_port = addresses[name].rpartition(":")
        first_ports = {"metrics": metrics_ports[name]}
        # An address by a name other than localhost (a Compose host, say) is not this machine's to check.
        if grpc_port.isdigit() and (host == "localhost" or host.replace(".", "").isdigit()):
            first_ports["gRPC"] = int(grpc_port)
        for what, first in first_ports.items():
            for replica, port in enumerate(replica_ports(first, count)):
                label = f"{name} {what}" + (f" (replica {replica})" if count > 1 else "")
                if port in taken:
                    raise ConfigurationError(f"{label} and {taken[port]} would both listen on port {port}")
                taken[port] = label


def restart_delay(quick_failures: int) -> float:
    """How long to wait before the next start after `quick_failures` failures in a row (≥ 1)."""
    return float(min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, quick_failures - 1)))


@dataclass
class Record:
    """What happened to one program, as `sb status` shows it."""

    restarts: int = 0
    last_exit: int | None = None
    last_exit_unix: float | None = None
    pid: int | None = None


# Called with every program's record after each restart, and once Redis answers again after one of its
# own (a record it could not take while it was down is written then).
RestartHook = Callable[[Mapping[str, Record]], None]


class Supervisor:
    """Runs programs in order, restarts any that exit on their own, stops them in reverse order."""

    def __init__(
        self,
        programs: Sequence[Program],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_restart: RestartHook | None = None,
        state_file: Path | None = None,
        ready: Mapping[str, Callable[[], bool]] | None = None,
    ) -> None:
        self.programs = list(programs)
        self.cwd = cwd
        self.env = dict(env)
        self.on_restart = on_restart
        self.state_file = state_file
        # Checks a program must pass before the next one starts (Redis must accept connections first).
        self.ready = dict(ready or {})
        self.records = {program.label: Record() for program in self.programs}
        self.processes: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        """Keep every program running until `stop` is called; then stop them all."""
        keepers = []
        try:
            for program in self.programs:
                keepers.append(asyncio.create_task(self._keep(program), name=program.label))
                await self._wait_ready(program)
            await self.stopping.wait()
        finally:
            self.stopping.set()
            await self._stop_all()
            for keeper in keepers:
                keeper.cancel()
            await asyncio.gather(*keepers, return_exceptions=True)

    def stop(self) -> None:
        self.stopping.set()

    async def _wait_ready(self, program: Program) -> None:
        check = self.ready.get(program.name)
        while check is not None and not self.stopping.is_set() and not await asyncio.to_thread(check):
            await asyncio.sleep(0.1)

    async def _keep(self, program: Program) -> None:
        quick_failures = 0
        record = self.records[program.label]
        while not self.stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *program.command,
                cwd=self.cwd,
                env={**self.env, **program.env},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                # Its own process group: Ctrl-C in the terminal reaches the supervisor alone, which
                # stops the programs in order.
                start_new_session=True,
            )
            self.processes[program.label] = process
            record.pid = process.pid
            self._save()
            say(program.label, f"started (pid {process.pid})")
            pump = asyncio.create_task(self._pump(program.label, process))
            if record.restarts and program.name in self.ready:
                await self._wait_ready(program)
                self._report()
            code = await process.wait()
            await pump
            if self.stopping.is_set():
                return
            quick_failures = 1 if time.monotonic() - started >= STABLE_AFTER_SECONDS else quick_failures + 1
            delay = restart_delay(quick_failures)
            record.restarts += 1
            record.last_exit = code
            record.last_exit_unix = time.time()
            say(
                program.label, f"exited with {_exit_text(code)}; restarting in {delay:.1f}s (restart {record.restarts})"
            )
            self._save()
            self._report()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)

    async def _pump(self, label: str, process: asyncio.subprocess.Process) -> None:
        """Copy a program's output to ours, each line marked with its name."""
        assert process.stdout is not None
        while line := await process.stdout.readline():
            say(label, line.decode(errors="replace").rstrip("\n"))

    async def _stop_all(self) -> None:
        """SIGTERM the programs in reverse order of start, each given time to finish, then SIGKILL."""
        for program in reversed(self.programs):
            process = self.processes.get(program.label)
            if process is None or process.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
            except TimeoutError:
                say(program.label, f"did not stop within {STOP_GRACE_SECONDS:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        self._save()

    def _report(self) -> None:
        if self.on_restart is None:
            return
        try:
            self.on_restart(self.records)
        except Exception as exc:  # noqa: BLE001 - a record Redis cannot take now must not stop a restart
            log.warning("could not record the restarts: %s", exc)

    def _save(self) -> None:
        if self.state_file is None:
            return
        body = {label: vars(record) for label, record in self.records.items()}
        partial = self.state_file.with_suffix(".part")
        partial.write_text(json.dumps(body, indent=1) + "\n")
        partial.replace(self.state_file)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def say(label: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {label:<10} | {text}", file=sys.stdout, flush=True)
