"""The sandbox: which raw paths resolve, to what, and which are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.toolhost.sandbox import PathOutsideSandbox, Sandbox
from switchboard.errors import InvalidRequest


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "a.txt").write_text("a")
    return folder.resolve()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("s")
    return folder.resolve()


def test_path_inside_a_root_resolves_to_itself(root: Path) -> None:
    assert Sandbox([root]).resolve(str(root / "docs" / "a.txt")) == root / "docs" / "a.txt"


def test_root_itself_is_allowed(root: Path) -> None:
    sandbox = Sandbox([root])
    assert sandbox.resolve(str(root)) == root
    assert sandbox.resolve(str(root) + os.sep) == root
    assert sandbox.resolve(str(root), follow_last=False) == root


def test_any_of_several_roots_is_allowed(root: Path, outside: Path) -> None:
    assert Sandbox([root, outside]).resolve(str(outside / "secret.txt")) == outside / "secret.txt"


def test_dotdot_escape_is_refused(root: Path, outside: Path) -> None:
    raw = str(root / "docs" / ".." / ".." / "outside" / "secret.txt")
    with pytest.raises(PathOutsideSandbox) as refused:
        Sandbox([root]).resolve(raw)
    assert refused.value.resolved == outside / "secret.txt"


def test_dotdot_that_stays_inside_is_allowed(root: Path) -> None:
    assert Sandbox([root]).resolve(str(root / "docs" / ".." / "docs" / "a.txt")) == root / "docs" / "a.txt"


def test_symlink_pointing_outside_is_refused(root: Path, outside: Path) -> None:
    (root / "link").symlink_to(outside)
    (root / "file_link").symlink_to(outside / "secret.txt")
    sandbox = Sandbox([root])
    for raw in (root / "link" / "secret.txt", root / "file_link", root / "link" / "new.txt"):
        with pytest.raises(PathOutsideSandbox):
            sandbox.resolve(str(raw))


def test_link_itself_is_kept_when_not_following_the_last_component(root: Path, outside: Path) -> None:
    (root / "file_link").symlink_to(outside / "secret.txt")
    assert Sandbox([root]).resolve(str(root / "file_link"), follow_last=False) == root / "file_link"


def test_symlinked_folder_cannot_smuggle_the_last_component_out(root: Path, outside: Path) -> None:
    (root / "link").symlink_to(outside)
    with pytest.raises(PathOutsideSandbox):
        Sandbox([root]).resolve(str(root / "link" / "secret.txt"), follow_last=False)


def test_symlink_inside_pointing_inside_resolves_to_its_target(root: Path) -> None:
    (root / "alias").symlink_to(root / "docs")
    assert Sandbox([root]).resolve(str(root / "alias" / "a.txt")) == root / "docs" / "a.txt"


def test_root_given_through_a_symlink_still_matches(tmp_path: Path, root: Path) -> None:
    (tmp_path / "root_link").symlink_to(root)
    assert Sandbox([tmp_path / "root_link"]).resolve(str(root / "docs")) == root / "docs"


def test_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    sandbox = Sandbox([home.resolve()])
    assert sandbox.resolve("~/notes.txt") == home.resolve() / "notes.txt"
    assert sandbox.resolve("~") == home.resolve()


def test_relative_path_is_taken_from_the_working_directory(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root / "docs")
    assert Sandbox([root]).resolve("a.txt") == root / "docs" / "a.txt"


def test_destination_that_does_not_exist_yet_resolves(root: Path) -> None:
    sandbox = Sandbox([root])
    assert sandbox.resolve(str(root / "docs" / "new.txt")) == root / "docs" / "new.txt"
    assert sandbox.resolve(str(root / "new_dir" / "deeper" / "x.txt")) == root / "new_dir" / "deeper" / "x.txt"
    assert sandbox.resolve(str(root / "docs" / "new.txt"), follow_last=False) == root / "docs" / "new.txt"


def test_refusal_names_the_path_and_lists_the_roots(root: Path, outside: Path, tmp_path: Path) -> None:
    other = (tmp_path / "other").resolve()
    with pytest.raises(PathOutsideSandbox) as refused:
        Sandbox([root, other]).resolve(str(outside / "secret.txt"))
    message = str(refused.value)
    assert str(outside / "secret.txt") in message
    assert str(root) in message and str(other) in message
    assert isinstance(refused.value, InvalidRequest)


def test_prefix_of_a_root_name_is_not_inside(tmp_path: Path, root: Path) -> None:
    sibling = tmp_path / "root_sibling"
    sibling.mkdir()
    assert not Sandbox([root]).is_inside(str(sibling))


def test_is_inside(root: Path, outside: Path) -> None:
    sandbox = Sandbox([root])
    assert sandbox.is_inside(str(root / "docs" / "a.txt"))
    assert not sandbox.is_inside(str(outside / "secret.txt"))
    assert not sandbox.is_inside("")


def test_empty_and_nul_paths_are_invalid(root: Path) -> None:
    sandbox = Sandbox([root])
    for raw in ("", "   ", "a\0b"):
        with pytest.raises(InvalidRequest):
            sandbox.resolve(raw)


def test_a_sandbox_needs_a_root() -> None:
    with pytest.raises(ValueError):
        Sandbox([])
