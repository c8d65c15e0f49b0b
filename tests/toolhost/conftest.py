"""Fixtures the tool server tests share: an allowed root, a folder outside it, and settings for both."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.toolhost.settings import ToolHostSettings


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The one allowed root (resolved, so symlinked temp folders compare equal)."""
    folder = (tmp_path / "root").resolve()
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the root that no tool may touch."""
    folder = (tmp_path / "outside").resolve()
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, root: Path) -> ToolHostSettings:
    return ToolHostSettings(allowed_roots=str(root), state_dir=tmp_path / "state")
