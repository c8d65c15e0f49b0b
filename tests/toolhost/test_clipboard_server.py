"""The clipboard MCP server against a real X server (Xvfb) and the real xclip, through the in-memory client."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psutil
import pytest

from services.toolhost.servers.clipboard import NO_DISPLAY, NO_XCLIP, build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, ok, refused

X_SOCKETS = Path("/tmp/.X11-unix")
XVFB_START_SECONDS = 10.0


@contextmanager
def running_xvfb() -> Iterator[str]:
    """A fresh Xvfb on a free display number, its DISPLAY value; stopped with every xclip that used it."""
    if shutil.which("Xvfb") is None:
        raise RuntimeError("Xvfb is not installed: apt-get install xvfb (make system-packages installs it)")
    deadline = time.monotonic() + XVFB_START_SECONDS
    for number in range(90, 190):
        if (X_SOCKETS / f"X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        server = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", "320x240x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while server.poll() is None and not (X_SOCKETS / f"X{number}").exists():
            if time.monotonic() > deadline:
                server.kill()
                server.wait()
                raise TimeoutError(f"Xvfb :{number} did not open its socket in {XVFB_START_SECONDS} s")
            time.sleep(0.01)
        if server.poll() is not None:
            continue  # another X server took this number meanwhile: try the next one
        display = f":{number}"
        try:
            yield display
        finally:
            server.terminate()
            server.wait(timeout=XVFB_START_SECONDS)
            _stop_clients_of(display)
        return
    raise RuntimeError("no free X display number between :90 and :189")


def _stop_clients_of(display: str) -> None:
    """xclip keeps a child owning the selection; it ends with its X server, and is killed if it lingers."""
    clients = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "xclip":
            continue
        try:
            if proc.environ().get("DISPLAY") == display:
                clients.append(proc)
        except psutil.Error:
            continue  # already gone, or a zombie whose environment can no longer be read
    deadline = time.monotonic() + 5
    while clients := [proc for proc in clients if _running(proc)]:
        if time.monotonic() > deadline:
            for proc in clients:
                proc.kill()
            return
        time.sleep(0.01)


def _running(proc: psutil.Process) -> bool:
    # An exited xclip is reaped by whoever adopted it; as a zombie it no longer holds anything.
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_xvfb() as value:
        monkeypatch.setenv("DISPLAY", value)
        yield value


@pytest.fixture
def settings(tmp_path: Path) -> ToolHostSettings:
    root = tmp_path / "root"
    root.mkdir()
    return ToolHostSettings(allowed_roots=str(root), state_dir=tmp_path / "state")


def xclip_out(display: str) -> str:
    return subprocess.run(
        ["xclip", "-selection", "clipboard", "-o"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        check=True,
        timeout=5,
    ).stdout.decode()


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "clipboard")


async def test_set_then_get_round_trips_unicode_text(settings: ToolHostSettings, display: str) -> None:
    text = "Grüße — 你好\nsecond line"
    result = await ok(build_server, settings, "set_clipboard", content=text)
    assert result["success"] is True and result["characters"] == len(text)
    assert xclip_out(display) == text  # another program sees it
    got = await ok(build_server, settings, "get_clipboard")
    assert got == {"content": text, "type": "text", "truncated": False, "note": None}


async def test_get_reads_what_another_program_copied(settings: ToolHostSettings, display: str) -> None:
    assert (await ok(build_server, settings, "get_clipboard"))["type"] == "empty"
    subprocess.run(
        ["xclip", "-selection", "clipboard", "-i"],
        input=b"copied elsewhere",
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=5,
    )
    deadline = time.monotonic() + 5
    while (got := await ok(build_server, settings, "get_clipboard"))["type"] == "empty":
        assert time.monotonic() < deadline, "xclip never took the clipboard"
    assert got["content"] == "copied elsewhere"


async def test_get_reports_non_text_data_without_content(
    settings: ToolHostSettings, display: str, tmp_path: Path
) -> None:
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (4, 4), "red").save(image)
    with image.open("rb") as png:
        subprocess.run(
            ["xclip", "-selection", "clipboard", "-i", "-t", "image/png"],
            stdin=png,
            env={**os.environ, "DISPLAY": display},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=5,
        )
    deadline = time.monotonic() + 5
    while (got := await ok(build_server, settings, "get_clipboard"))["type"] == "empty":
        assert time.monotonic() < deadline, "xclip never took the clipboard"
    assert got["type"] == "image/png" and got["content"] == "" and "not text" in got["note"]


async def test_history_keeps_what_passed_through_newest_first(settings: ToolHostSettings, display: str) -> None:
    for text in ("first", "second", "third"):
        await ok(build_server, settings, "set_clipboard", content=text)
    await ok(build_server, settings, "get_clipboard")  # same as the newest entry: not recorded twice
    history = await ok(build_server, settings, "clipboard_history", limit=2)
    assert [(e["content"], e["source"]) for e in history["entries"]] == [("third", "set"), ("second", "set")]
    assert history["database"] == str(settings.state_dir / "clipboard.db")
    assert "T" in history["entries"][0]["at"]
    everything = await ok(build_server, settings, "clipboard_history")
    assert [e["content"] for e in everything["entries"]] == ["third", "second", "first"]
    with closing(sqlite3.connect(settings.state_dir / "clipboard.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_history_works_without_a_display(settings: ToolHostSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    assert (await ok(build_server, settings, "clipboard_history"))["entries"] == []
    assert "limit" in await refused(build_server, settings, "clipboard_history", limit=0)


async def test_without_a_display_the_error_says_so(settings: ToolHostSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    assert NO_DISPLAY in await refused(build_server, settings, "get_clipboard")
    assert NO_DISPLAY in await refused(build_server, settings, "set_clipboard", content="x")
    assert (await ok(build_server, settings, "clipboard_history"))["entries"] == []


async def test_a_display_without_an_x_server_is_named(
    settings: ToolHostSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = next(n for n in range(300, 400) if not (X_SOCKETS / f"X{n}").exists())
    monkeypatch.setenv("DISPLAY", f":{free}")
    assert f"cannot open X display ':{free}'" in await refused(build_server, settings, "get_clipboard")


async def test_without_xclip_the_error_says_how_to_install_it(
    settings: ToolHostSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no xclip on it
    assert NO_XCLIP in await refused(build_server, settings, "set_clipboard", content="x")
