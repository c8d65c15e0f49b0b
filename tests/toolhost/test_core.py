"""Tool name resolution and argument parsing (pure logic)."""

import pytest

from services.toolhost.core import ToolSpec, UnknownTool, parse_arguments, path_arguments, resolve_tool
from switchboard.errors import InvalidRequest

TOOLS = {
    name: ToolSpec(name=name, server=name.split(".")[0], description="")
    for name in ("filesystem.move_file", "filesystem.list_dir", "filesystem.delete_file", "document.extract_text")
}


@pytest.mark.parametrize(
    ("asked", "resolved"),
    [
        ("filesystem.move_file", "filesystem.move_file"),  # exact
        ("move_file", "filesystem.move_file"),  # unique suffix
        ("rename", "filesystem.move_file"),  # alias
        ("filesystem.rename_file", "filesystem.move_file"),  # alias on its server
        ("filesystem.list_dirs", "filesystem.list_dir"),  # close match on the same server
        ("document.extract_txt", "document.extract_text"),
    ],
)
def test_names_resolve(asked: str, resolved: str) -> None:
    assert resolve_tool(asked, TOOLS).name == resolved


def test_unknown_names_suggest_the_nearest_tools() -> None:
    with pytest.raises(UnknownTool, match="filesystem.list_dir"):
        resolve_tool("filesystem.list_directory_contents", TOOLS)
    with pytest.raises(UnknownTool):
        resolve_tool("email.rename", TOOLS)  # an alias does not cross servers


def test_arguments_must_be_a_json_object() -> None:
    assert parse_arguments("") == {}
    with pytest.raises(InvalidRequest):
        parse_arguments("[1]")
    with pytest.raises(InvalidRequest):
        parse_arguments("{nope")


def test_path_arguments_are_found_at_the_top_level() -> None:
    assert path_arguments({"source": "/a", "destination": "/b", "paths": ["/c", 3], "count": 2}) == ["/a", "/b", "/c"]
    assert path_arguments(["/a"]) == []
