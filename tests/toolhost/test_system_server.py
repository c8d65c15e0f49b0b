"""The system MCP server through the in-memory client: real psutil facts, real launches and screenshots on Xvfb."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from PIL import Image

from services.toolhost.servers.system import NO_DESKTOP, NO_X_DISPLAY, NO_XDG_OPEN, build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, ok, refused
from tests.toolhost.test_clipboard_server import running_xvfb

SLEEP = shutil.which("sleep") or "/bin/sleep"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = (tmp_path / "root").resolve()
    folder.mkdir()
    (folder / "notes.txt").write_text("hello\n")
    return folder


@pytest.fixture
def no_desktop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_xvfb() as value:
        monkeypatch.setenv("DISPLAY", value)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield value


@pytest.fixture
def programs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only a viewer program that records how it was started, then keeps running."""
    folder = tmp_path / "bin"
    folder.mkdir()
    viewer = folder / "sb-test-viewer"
    viewer.write_text(f'#!/bin/sh\necho "$DISPLAY $*" > "{tmp_path / "started.txt"}"\nexec {SLEEP} 60\n')
    viewer.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_DATA_DIRS", str(tmp_path / "no-system-share"))
    return folder


def started_with(tmp_path: Path, pid: int) -> str:
    """What the launched viewer recorded, waited for with a deadline; the viewer is then stopped."""
    marker = tmp_path / "started.txt"
    deadline = time.monotonic() + 10
    while not (marker.exists() and marker.read_text().endswith("\n")):
        assert time.monotonic() < deadline, "the launched program never ran"
        time.sleep(0.01)
    process = psutil.Process(pid)
    assert SLEEP in process.cmdline()[0] or "sleep" in process.name()
    process.kill()
    psutil.wait_procs([process], timeout=5)
    return marker.read_text().strip()


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "system")


async def test_get_system_info_reports_this_machine(settings: ToolHostSettings, root: Path) -> None:
    info = await ok(build_server, settings, "get_system_info")
    assert info["kernel"] == platform.release() and info["arch"] == platform.machine()
    assert info["os"].startswith(platform.system()) and info["hostname"] == platform.node()
    assert info["cpu_cores_logical"] == psutil.cpu_count() and info["cpu"]
    assert info["ram_gb"] == round(psutil.virtual_memory().total / 1024**3, 2) > 0
    assert len(info["load_average"]) == 3 and isinstance(info["gpus"], list)
    [disk] = info["disks"]
    assert disk["path"] == str(root) and disk["total_gb"] >= disk["free_gb"] > 0
    assert info["uptime_seconds"] > 0 and "T" in info["boot_time"]


async def test_list_processes_finds_a_process_by_name(settings: ToolHostSettings) -> None:
    with subprocess.Popen([SLEEP, "30"]) as sleeper:
        try:
            result = await ok(build_server, settings, "list_processes", filter="SLEEP")
        finally:
            sleeper.kill()
    [mine] = [p for p in result["processes"] if p["pid"] == sleeper.pid]
    assert mine["name"] == "sleep" and mine["command"] == f"{SLEEP} 30"
    assert mine["user"] == psutil.Process().username() and mine["memory_mb"] > 0
    assert 0 <= mine["cpu_percent"] <= 100 * (psutil.cpu_count() or 1)
    assert all("sleep" in p["name"].lower() or "sleep" in p["command"].lower() for p in result["processes"])
    assert result["filter"] == "SLEEP" and result["truncated"] is False


async def test_list_processes_sorts_and_caps(settings: ToolHostSettings) -> None:
    everything = await ok(build_server, settings, "list_processes")
    assert everything["total_matching"] >= len(everything["processes"]) > 0
    cpu = [p["cpu_percent"] or 0 for p in everything["processes"]]
    assert cpu == sorted(cpu, reverse=True)
    assert os.getpid() in [
        p["pid"] for p in (await ok(build_server, settings, "list_processes", filter="python"))["processes"]
    ]
    nothing = await ok(build_server, settings, "list_processes", filter="no-such-program-xyz")
    assert nothing["processes"] == [] and nothing["total_matching"] == 0


# without a desktop, as on this project's machines


async def test_open_application_names_what_is_missing(
    settings: ToolHostSettings, no_desktop: None, programs: Path
) -> None:
    text = await refused(build_server, settings, "open_application", app_name="sb-test-viewer")
    assert text.endswith(f"Cannot open 'sb-test-viewer': {NO_DESKTOP}.")
    text = await refused(build_server, settings, "open_application", app_name="Photo Shop")
    assert NO_DESKTOP in text and "'Photo Shop' is not installed" in text


async def test_open_file_with_names_what_is_missing(
    settings: ToolHostSettings, root: Path, no_desktop: None, programs: Path
) -> None:
    text = await refused(build_server, settings, "open_file_with", path=str(root / "notes.txt"))
    assert NO_DESKTOP in text and NO_XDG_OPEN in text
    assert "does not exist" in await refused(build_server, settings, "open_file_with", path=str(root / "none.txt"))


async def test_take_screenshot_without_a_display(settings: ToolHostSettings, root: Path, no_desktop: None) -> None:
    assert NO_X_DISPLAY in await refused(build_server, settings, "take_screenshot")
    assert not (root / "Screenshots").exists()


async def test_paths_outside_the_roots_are_refused(settings: ToolHostSettings, root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("x")
    for arguments in (
        {"path": str(tmp_path / "secret.txt")},
        {"path": str(root / ".." / "secret.txt"), "app": "sb-test-viewer"},
        {"path": str(root / "notes.txt"), "app": str(tmp_path / "bin" / "sb-test-viewer")},
    ):
        text = await refused(build_server, settings, "open_file_with", **arguments)
        assert "outside the allowed folders" in text and str(root) in text, arguments


# with a desktop: Xvfb


async def test_open_application_starts_the_program(
    settings: ToolHostSettings, display: str, programs: Path, tmp_path: Path
) -> None:
    result = await ok(build_server, settings, "open_application", app_name="sb-test-viewer")
    assert result["success"] is True and result["still_running"] is True and result["display"] == display
    assert result["command"] == [str(programs / "sb-test-viewer")]
    assert started_with(tmp_path, result["pid"]) == display


async def test_open_application_by_menu_name(
    settings: ToolHostSettings, display: str, programs: Path, tmp_path: Path
) -> None:
    entries = tmp_path / "share" / "applications"
    entries.mkdir(parents=True)
    (entries / "viewer.desktop").write_text(
        "[Desktop Entry]\nType=Application\nName=Test Viewer\nExec=sb-test-viewer --new-window %U\n"
        "[Desktop Action Other]\nName=Other\nExec=nothing-here\n"
    )
    result = await ok(build_server, settings, "open_application", app_name="test viewer")
    assert result["command"] == [str(programs / "sb-test-viewer"), "--new-window"]
    assert started_with(tmp_path, result["pid"]) == f"{display} --new-window"
    assert "not installed" in await refused(build_server, settings, "open_application", app_name="Other")


async def test_open_file_with_a_program_and_the_default(
    settings: ToolHostSettings, display: str, programs: Path, root: Path, tmp_path: Path
) -> None:
    notes = root / "notes.txt"
    result = await ok(build_server, settings, "open_file_with", path=str(notes), app="sb-test-viewer")
    assert result["command"] == [str(programs / "sb-test-viewer"), str(notes)]
    assert started_with(tmp_path, result["pid"]) == f"{display} {notes}"
    assert NO_XDG_OPEN in await refused(build_server, settings, "open_file_with", path=str(notes))
    (programs / "xdg-open").symlink_to(programs / "sb-test-viewer")
    (tmp_path / "started.txt").unlink()
    default = await ok(build_server, settings, "open_file_with", path=str(notes))
    assert default["command"] == [str(programs / "xdg-open"), str(notes)]
    assert started_with(tmp_path, default["pid"]) == f"{display} {notes}"


async def test_a_program_that_fails_at_once_is_reported(
    settings: ToolHostSettings, display: str, programs: Path
) -> None:
    failing = programs / "sb-test-broken"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    assert "exited at once with status 3" in await refused(
        build_server, settings, "open_application", app_name="sb-test-broken"
    )


async def test_take_screenshot_saves_a_png_in_the_sandbox(settings: ToolHostSettings, display: str, root: Path) -> None:
    full = await ok(build_server, settings, "take_screenshot")
    shot = Path(full["path"])
    assert shot.parent == root / "Screenshots" and shot.suffix == ".png"
    assert (full["width"], full["height"], full["display"]) == (320, 240, display)
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (320, 240)
    [undo] = full["undo"]
    assert undo["kind"] == "remove_created" and undo["sha256"] == hashlib.sha256(shot.read_bytes()).hexdigest()
    part = await ok(build_server, settings, "take_screenshot", region={"x": 10, "y": 20, "width": 100, "height": 50})
    assert (part["width"], part["height"]) == (100, 50) and part["path"] != full["path"]
    with Image.open(part["path"]) as image:
        assert image.size == (100, 50)


async def test_take_screenshot_rejects_a_bad_region(settings: ToolHostSettings, display: str, root: Path) -> None:
    text = await refused(
        build_server, settings, "take_screenshot", region={"x": 300, "y": 0, "width": 100, "height": 10}
    )
    assert "320x240" in text
    assert "keys x, y, width, height" in await refused(build_server, settings, "take_screenshot", region={"w": 1})
    text = await refused(build_server, settings, "take_screenshot", region={"x": 0, "y": 0, "width": "a", "height": 1})
    assert "whole number" in text
    assert not (root / "Screenshots").exists() or not list((root / "Screenshots").iterdir())
