"""The stack the stack tests share: one set of five service processes for the whole package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.files import text_pdf
from tests.stack.harness import Stack

FILES = ("alpha.txt", "budget-2026.xlsx", "notes.md")


@pytest.fixture(scope="package")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    for name in FILES:
        (root / name).write_text(f"contents of {name}\n")
    (root / "drafts").mkdir()
    papers = root / "papers"
    papers.mkdir()
    text_pdf(papers / "solar.pdf", "Solar panels turned 21 percent of the light into power in the field trial.")
    text_pdf(papers / "wind.pdf", "The wind farm ran at 38 percent of its rated capacity over the winter.")
    (papers / "readme.txt").write_text("not a pdf\n")
    single = root / "single"
    single.mkdir()
    text_pdf(single / "report.pdf", "Quarterly report: revenue grew by nine percent.")
    return root


@pytest.fixture(scope="package")
def stack(redis_url: str, workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis.Redis.from_url(redis_url).flushdb()
    # The policy file raises one read to a click and lets one change run at once, so the stack tests
    # see the tool host and the planner honour it (tests/stack/test_person.py).
    policy = tmp_path_factory.mktemp("config") / "confirmation.yaml"
    policy.write_text("tools:\n  calendar.list_events: confirm\n  task.create_task: run\n")
    settings = {"SWITCHBOARD_CONFIRMATION_POLICY": str(policy)}
    running = Stack(redis_url, tmp_path_factory.mktemp("state"), [workspace], settings)
    try:
        running.start()
        yield running
    finally:
        running.stop()
