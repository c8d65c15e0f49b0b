"""The `system` MCP server: facts about this computer, its processes, opening programs and screenshots.

System facts and processes come from psutil and the platform module. Opening a program or a file and
taking a screenshot need a desktop session: an X display in `DISPLAY` (or a Wayland one in
`WAYLAND_DISPLAY` for opening programs). Without one these tools say exactly what is missing instead
of pretending. Screenshots are PNG files saved in `Screenshots/` of the first allowed folder. Run over
stdio with `python -m services.toolhost.servers.system`; logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import platform
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import psutil
from mcp.server.mcpserver import MCPServer
from PIL import ImageGrab
from pydantic import BaseModel, Field

from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    UndoAction,
    iso,
    missing,
    serve,
    sha256_of,
    tool,
)
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.system")

SERVER_NAME = "system"
GIB = 1024**3
MAX_PROCESSES = 100
CPU_SAMPLE_SECONDS = 0.25
# A program that fails to start (bad display, missing library) usually exits within this time.
LAUNCH_CHECK_SECONDS = 0.3
SCREENSHOT_FOLDER = "Screenshots"
NO_DESKTOP = (
    "no desktop session: neither DISPLAY nor WAYLAND_DISPLAY is set, so there is no screen to open "
    "programs on (log in to a desktop, or start an X server such as Xvfb and set DISPLAY)"
)
NO_X_DISPLAY = "no display: set DISPLAY to a running X server (e.g. DISPLAY=:0) before starting the tool host"
NO_XDG_OPEN = "xdg-open is not installed: apt-get install xdg-utils, or name the program to use in app"


class DiskUsage(BaseModel):
    path: str = Field(description="An allowed folder; the numbers are for the disk it is on.")
    total_gb: float
    used_gb: float
    free_gb: float
    percent_used: float


class SystemInfo(BaseModel):
    os: str = Field(description='Operating system and distribution, e.g. "Linux (Debian GNU/Linux 12)".')
    kernel: str
    arch: str = Field(description='Processor architecture, e.g. "x86_64".')
    hostname: str
    cpu: str = Field(description="Processor model name.")
    cpu_cores_logical: int
    cpu_cores_physical: int | None
    load_average: list[float] = Field(description="Processes waiting for a CPU over the last 1, 5 and 15 minutes.")
    ram_gb: float = Field(description="Total memory.")
    ram_available_gb: float
    ram_percent_used: float
    swap_gb: float
    gpus: list[str] = Field(description="Graphics devices with their kernel driver; empty when none is visible.")
    disks: list[DiskUsage]
    boot_time: str = Field(description="When the computer started, ISO 8601.")
    uptime_seconds: int
    display: str | None = Field(description="The desktop display tools can use (DISPLAY or WAYLAND_DISPLAY), if any.")


class ProcessInfo(BaseModel):
    pid: int
    name: str
    user: str | None
    cpu_percent: float | None = Field(description="CPU use over a quarter second; 100 = one full core.")
    memory_mb: float | None = Field(description="Resident memory in MiB.")
    memory_percent: float | None
    status: str
    started: str | None = Field(description="Start time, ISO 8601.")
    command: str = Field(description="The command line, cut at 200 characters.")


class ProcessList(BaseModel):
    processes: list[ProcessInfo] = Field(description="Busiest first (CPU, then memory).")
    total_matching: int = Field(description="Processes that matched, before the list was cut.")
    truncated: bool = Field(description=f"True when more than {MAX_PROCESSES} processes matched.")
    filter: str | None


class Launched(BaseModel):
    success: bool
    pid: int = Field(description="Process id of the started program.")
    command: list[str] = Field(description="The program and arguments that were started.")
    display: str
    still_running: bool = Field(description="False when the program finished at once (it may have handed over).")


class Screenshot(BaseModel):
    path: str = Field(description="The PNG file written.")
    width: int
    height: int
    display: str
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The system server; files it opens or writes must lie inside `settings.roots()`."""
    sandbox = settings.sandbox()
    resolve = sandbox.resolve
    server = MCPServer(
        SERVER_NAME,
        instructions="This computer: hardware and OS facts, running processes, opening programs, screenshots.",
    )

    @tool(server, Effects.reads())
    def get_system_info() -> SystemInfo:
        """Describe this computer: OS, kernel, CPU model and cores, memory, GPUs, free disk space, uptime.

        For the programs running now use system.list_processes. For a single file's size use
        filesystem.get_metadata.
        """
        memory = psutil.virtual_memory()
        boot = psutil.boot_time()
        return SystemInfo(
            os=_os_name(),
            kernel=platform.release(),
            arch=platform.machine(),
            hostname=platform.node(),
            cpu=_cpu_model(),
            cpu_cores_logical=psutil.cpu_count() or 1,
            cpu_cores_physical=psutil.cpu_count(logical=False),
            load_average=[round(v, 2) for v in os.getloadavg()],
            ram_gb=_gb(memory.total),
            ram_available_gb=_gb(memory.available),
            ram_percent_used=memory.percent,
            swap_gb=_gb(psutil.swap_memory().total),
            gpus=_gpus(),
            disks=[_disk(root) for root in sandbox.roots],
            boot_time=iso(boot),
            uptime_seconds=int(time.time() - boot),
            display=_display(),
        )

    @tool(server, Effects.reads())
    def list_processes(
        filter: Annotated[
            str | None,
            Field(
                description='Only processes whose name contains this text, e.g. "python" or "firefox". Omit for all.'
            ),
        ] = None,
    ) -> ProcessList:
        """List running programs (processes) with pid, name, user, CPU and memory use, busiest first.

        Returns at most 100. Use filter to find one program. For totals of CPU, memory and disk use
        system.get_system_info.
        """
        needle = (filter or "").strip().casefold()
        attrs = ["pid", "name", "username", "cmdline", "create_time", "status", "memory_info", "memory_percent"]
        found = [
            proc
            for proc in psutil.process_iter(attrs)
            if not needle or needle in (proc.info["name"] or "").casefold() or needle in _program_name(proc).casefold()
        ]
        # CPU use is a rate: measure every matching process over the same short interval.
        for proc in found:
            _cpu_percent(proc)
        time.sleep(CPU_SAMPLE_SECONDS)
        listed = [_process_info(proc, _cpu_percent(proc)) for proc in found]
        listed.sort(key=lambda p: (-(p.cpu_percent or 0.0), -(p.memory_mb or 0.0), p.pid))
        return ProcessList(
            processes=listed[:MAX_PROCESSES],
            total_matching=len(listed),
            truncated=len(listed) > MAX_PROCESSES,
            filter=filter,
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=False,
            idempotent=False,
            open_world=True,
            preview="Start the application {app_name}",
        ),
    )
    def open_application(
        app_name: Annotated[
            str,
            Field(description='The program to start: its command or menu name, e.g. "firefox" or "Text Editor".'),
        ],
    ) -> Launched:
        """Start a desktop program (application) by name, on the user's screen, and return its process id.

        To open a particular file or folder in a program use system.open_file_with instead. Needs a
        desktop session; the error says what is missing.
        """
        problems = []
        display = _display()
        if display is None:
            problems.append(NO_DESKTOP)
        command = _program_command(app_name, resolve)
        if command is None:
            problems.append(_not_found(app_name))
        if display is None or command is None:
            not_installed = None
            if command is None:
                not_installed = Correction(f"{app_name!r} is not installed here", parameter="app_name")
            raise ToolError(f"Cannot open {app_name!r}: " + "; and ".join(problems) + ".", correction=not_installed)
        return _launch(command, display)

    @tool(
        server,
        Effects.changes(
            destructive=False, undoable=False, idempotent=False, open_world=True, preview="Open {path}[ with {app}]"
        ),
    )
    def open_file_with(
        path: Annotated[str, Field(description="Absolute path of the file (or folder) to open.")],
        app: Annotated[
            str | None,
            Field(description='Program to open it with, e.g. "gimp". Omit to use the default program for its type.'),
        ] = None,
    ) -> Launched:
        """Open a file in a desktop program (its default program, or the one named in app).

        To start a program without a file use system.open_application. To read a file's text use
        filesystem.read_file. Needs a desktop session; the error says what is missing.
        """
        target = resolve(path)
        if not target.exists():
            raise missing(target, path)
        problems = []
        display = _display()
        if display is None:
            problems.append(NO_DESKTOP)
        if app is None:
            opener = shutil.which("xdg-open")
            command = None if opener is None else [opener]
            if command is None:
                problems.append(NO_XDG_OPEN)
        else:
            command = _program_command(app, resolve)
            if command is None:
                problems.append(_not_found(app))
        if display is None or command is None:
            no_program = None
            if command is None:
                what = f"{app!r} is not installed here" if app is not None else "xdg-open is not installed"
                no_program = Correction(what, parameter="app")
            raise ToolError(f"Cannot open {target}: " + "; and ".join(problems) + ".", correction=no_program)
        return _launch([*command, str(target)], display)

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=False,
            preview="Screenshot[ of region {region}], kept as a PNG file under Screenshots",
        ),
    )
    def take_screenshot(
        region: Annotated[
            dict[str, Any] | None,
            Field(
                description='Part of the screen in pixels: {"x": 0, "y": 0, "width": 800, "height": 600}, x and y '
                "from the top-left corner. Omit for the whole screen."
            ),
        ] = None,
    ) -> Screenshot:
        """Take a screenshot of the screen (or part of it) and save it as a PNG file.

        The file goes into the Screenshots folder of the first allowed folder; its path is returned.
        To read text in the picture afterwards use ocr.extract_text_from_image. Needs an X display.
        """
        display = os.environ.get("DISPLAY", "").strip()
        if not display:
            raise ToolError(
                NO_X_DISPLAY
                + (" (a Wayland session alone is not supported)" if os.environ.get("WAYLAND_DISPLAY") else "")
            )
        try:
            image = ImageGrab.grab(xdisplay=display)
        except OSError as exc:
            raise ToolError(f"cannot capture X display {display!r}: {exc}. Is an X server running there?") from exc
        if region is not None:
            image = image.crop(_box(region, image.width, image.height))
        folder = resolve(str(sandbox.roots[0] / SCREENSHOT_FOLDER))
        folder.mkdir(parents=True, exist_ok=True)
        target = _new_file(folder, datetime.now().strftime("screenshot-%Y%m%d-%H%M%S"), ".png")
        with target.open("xb") as f:
            image.save(f, format="PNG")
        log.info("saved a %dx%d screenshot of %s to %s", image.width, image.height, display, target)
        return Screenshot(
            path=str(target),
            width=image.width,
            height=image.height,
            display=display,
            undo=[UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))],
        )

    return server


# facts


def _gb(size: float) -> float:
    return round(size / GIB, 2)


def _os_name() -> str:
    try:
        pretty = platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        pretty = None  # not a freedesktop system (no /etc/os-release)
    return f"{platform.system()} ({pretty})" if pretty else platform.system()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass  # not Linux: fall back to what the platform module knows
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    """DRM devices of the kernel (card0, card1 ...) with their driver and PCI id."""
    found = []
    for card in sorted(Path("/sys/class/drm").glob("card[0-9]*")):
        if "-" in card.name:
            continue  # a connector such as card0-HDMI-A-1, not a device
        try:
            uevent = dict(
                line.split("=", 1) for line in (card / "device" / "uevent").read_text().splitlines() if "=" in line
            )
        except OSError:
            continue
        found.append(f"{card.name}: driver {uevent.get('DRIVER', 'unknown')}, PCI id {uevent.get('PCI_ID', 'unknown')}")
    return found


def _disk(root: Path) -> DiskUsage:
    usage = psutil.disk_usage(str(root))
    return DiskUsage(
        path=str(root),
        total_gb=_gb(usage.total),
        used_gb=_gb(usage.used),
        free_gb=_gb(usage.free),
        percent_used=usage.percent,
    )


def _display() -> str | None:
    for variable in ("DISPLAY", "WAYLAND_DISPLAY"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return None


# processes


def _program_name(proc: psutil.Process) -> str:
    cmdline = proc.info.get("cmdline") or []
    return os.path.basename(cmdline[0]) if cmdline else ""


def _cpu_percent(proc: psutil.Process) -> float | None:
    try:
        return float(proc.cpu_percent(None))
    except psutil.Error:
        return None  # ended meanwhile, or not ours to inspect


def _process_info(proc: psutil.Process, cpu: float | None) -> ProcessInfo:
    info = proc.info
    memory = info.get("memory_info")
    created = info.get("create_time")
    cmdline = info.get("cmdline") or []
    return ProcessInfo(
        pid=info["pid"],
        name=info["name"] or "",
        user=info.get("username"),
        cpu_percent=None if cpu is None else round(cpu, 1),
        memory_mb=None if memory is None else round(memory.rss / 1024**2, 1),
        memory_percent=None if info.get("memory_percent") is None else round(info["memory_percent"], 2),
        status=info.get("status") or "unknown",
        started=None if created is None else iso(created),
        command=(shlex.join(cmdline) if cmdline else f"[{info['name']}]")[:200],
    )


# launching


def _program_command(name: str, resolve: Callable[[str], Path]) -> list[str] | None:
    """The command that starts `name`: a program on PATH, a menu entry (.desktop file), or a sandboxed path."""
    name = name.strip()
    if not name:
        raise ToolError(
            'No program was named. Give its command or menu name, e.g. "firefox".',
            correction=Correction("no program was named", rejected=name),
        )
    if os.sep in name:
        program = resolve(name)
        if not (program.is_file() and os.access(program, os.X_OK)):
            raise ToolError(
                f"{program} is not an executable program. Give a program name like 'firefox' instead.",
                correction=Correction(f"{name!r} is not an executable program", rejected=name),
            )
        return [str(program)]
    for candidate in dict.fromkeys([name, name.lower(), name.lower().replace(" ", "-"), name.lower().replace(" ", "")]):
        found = shutil.which(candidate)
        if found is not None:
            return [found]
    return _desktop_entry_command(name)


def _application_dirs() -> list[Path]:
    home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    others = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    return [Path(d) / "applications" for d in [home, *others.split(os.pathsep)] if d]


def _desktop_entry_command(name: str) -> list[str] | None:
    """The Exec line of the menu entry called `name` (its Name= or file name), if its program exists."""
    wanted = name.casefold()
    for folder in _application_dirs():
        for entry in sorted(folder.glob("*.desktop")) if folder.is_dir() else []:
            fields = _desktop_fields(entry)
            if wanted not in (fields.get("Name", "").casefold(), entry.stem.casefold()):
                continue
            try:
                # Field codes (%f, %U ...) stand for files to open; none are given here.
                argv = [arg for arg in shlex.split(fields.get("Exec", "")) if not arg.startswith("%")]
            except ValueError:
                continue  # a malformed Exec line: look further
            program = shutil.which(argv[0]) if argv else None
            if program is not None:
                return [program, *argv[1:]]
    return None


def _desktop_fields(entry: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        lines = entry.read_text(errors="replace").splitlines()
    except OSError:
        return fields
    in_main = False
    for line in lines:
        if line.startswith("["):
            in_main = line.strip() == "[Desktop Entry]"
        elif in_main and "=" in line:
            key, value = line.split("=", 1)
            fields.setdefault(key.strip(), value.strip())
    return fields


def _not_found(name: str) -> str:
    return (
        f"{name!r} is not installed here: no such program on PATH and no menu entry with that name in "
        f"{', '.join(str(d) for d in _application_dirs())}. Give the program's command name, e.g. 'firefox'"
    )


def _launch(command: list[str], display: str) -> Launched:
    """Start `command` in its own session, detached from the tool host's input and output."""
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=_home(),
        )
    except OSError as exc:
        raise ToolError(f"Could not start {command[0]}: {exc.strerror or exc}.") from exc
    try:
        status = proc.wait(timeout=LAUNCH_CHECK_SECONDS)
    except subprocess.TimeoutExpired:
        status = None
        # Reap the program whenever it ends, so that it never lingers as a zombie of the tool host.
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
    if status not in (None, 0):
        raise ToolError(f"{command[0]} exited at once with status {status}; it could not start on {display}.")
    log.info("started %s as pid %d on %s", shlex.join(command), proc.pid, display)
    return Launched(success=True, pid=proc.pid, command=command, display=display, still_running=status is None)


def _home() -> Path | None:
    """The user's home folder, where desktop launchers start programs; None (stay put) if it is missing."""
    home = Path.home()
    return home if home.is_dir() else None


# screenshots


def _box(region: dict[str, Any], screen_width: int, screen_height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a region given as x, y, width, height, checked against the screen."""
    expected = {"x", "y", "width", "height"}
    if set(region) != expected:
        raise ToolError(
            f'region needs exactly the keys x, y, width, height, e.g. {{"x": 0, "y": 0, "width": 400, "height": 300}};'
            f" got {sorted(region)}. Omit region for the whole screen.",
            correction=Correction("region needs exactly the keys x, y, width, height", parameter="region"),
        )
    values = {}
    for key in sorted(expected):
        value = region[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise ToolError(
                f"region {key} must be a whole number of pixels, not {value!r}.",
                correction=Correction(f"region {key} is not a whole number", parameter="region"),
            )
        values[key] = int(value)
    x, y, width, height = values["x"], values["y"], values["width"], values["height"]
    if x < 0 or y < 0 or width < 1 or height < 1 or x + width > screen_width or y + height > screen_height:
        left, top = max(x, 0), max(y, 0)
        right, bottom = min(x + width, screen_width), min(y + height, screen_height)
        inside = None
        if right > left and bottom > top:
            inside = {"x": left, "y": top, "width": right - left, "height": bottom - top}
        raise ToolError(
            f"region x={x}, y={y}, width={width}, height={height} does not fit the screen, which is "
            f"{screen_width}x{screen_height} pixels. Give a region inside it, or omit region.",
            correction=Correction("region does not fit the screen", parameter="region", suggested_value=inside),
        )
    return x, y, x + width, y + height


def _new_file(folder: Path, stem: str, suffix: str) -> Path:
    """A path in `folder` that does not exist yet: `stem.png`, else `stem-2.png`, `stem-3.png` ..."""
    candidate = folder / f"{stem}{suffix}"
    number = 1
    while candidate.exists():
        number += 1
        candidate = folder / f"{stem}-{number}{suffix}"
    return candidate


def main() -> None:
    """Serve the system tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
