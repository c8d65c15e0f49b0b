"""The web page at `/`, driven in a real Chromium against the real stack, one session from login to audit.

The tests run in file order on one page (one browser tab, one Switchboard session), as a person would use
it; each saves screenshots to `test-artifacts/page/`. Every wait is Playwright's auto-waiting with a
generous deadline: the models are slow on two cores.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright

from tests.stack.harness import PROJECT_ROOT, Stack

pytestmark = pytest.mark.stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTEFACTS = PROJECT_ROOT / "test-artifacts" / "page"
WAIT_MS = 90_000  # one request through planner, filter and router, or one decision carried out
FINISHED = re.compile(r"^(answered|needs_clarification|refused|failed)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def page(browser: BrowserContext, stack: Stack) -> Page:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    opened = browser.pages[0] if browser.pages else browser.new_page()
    opened.set_default_timeout(WAIT_MS)
    opened.goto(f"http://127.0.0.1:{stack.http_port}/")
    return opened


@pytest.fixture(scope="module")
def folder(workspace: Path) -> Path:
    """A folder of the workspace only these tests touch."""
    made = workspace / "page-test"
    made.mkdir(exist_ok=True)
    return made


def shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTEFACTS / f"{name}.png", full_page=True)


def log_in(page: Page, stack: Stack) -> None:
    """Log in unless an earlier test already did (the token is kept in the tab's sessionStorage)."""
    if page.locator("#app").is_visible():
        return
    page.get_by_label("API token").fill(stack.token)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#app")).to_be_visible()


def ask(page: Page, text: str) -> None:
    """Type a request and send it with Ctrl+Enter; wait until the page shows its run."""
    box = page.get_by_label("Request", exact=True)
    box.fill(text)
    box.press("Control+Enter")
    expect(page.locator("#run-text")).to_have_text(text)


def waiting_step(page: Page) -> Locator:
    step = page.locator('#steps > li[data-status="awaiting_confirmation"]')
    expect(step).to_have_count(1)
    expect(step.locator(".preview")).to_be_visible()
    return step


def run_status(page: Page) -> Locator:
    return page.locator("#run-status")


def test_a_wrong_token_is_refused_clearly_and_the_right_one_logs_in(page: Page, stack: Stack) -> None:
    expect(page.get_by_label("API token")).to_have_attribute("type", "password")
    shot(page, "01-login")
    page.get_by_label("API token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("401")
    expect(page.locator("#app")).to_be_hidden()
    shot(page, "02-wrong-token")

    log_in(page, stack)
    expect(page.get_by_role("alert")).to_be_hidden()
    assert page.evaluate("document.cookie") == ""
    assert stack.token not in page.url
    assert page.evaluate("sessionStorage.getItem('switchboard.token')") == stack.token
    shot(page, "03-logged-in")


def test_a_new_file_waits_for_approval_and_is_written_once_approved(page: Page, stack: Stack, folder: Path) -> None:
    log_in(page, stack)
    target = folder / "greeting.txt"
    ask(page, f"Save 'good morning to you' as the file {target}")
    step = waiting_step(page)
    expect(step).to_contain_text("filesystem.write_file")
    expect(step.locator(".preview")).to_contain_text("greeting.txt")
    expect(step.locator("[data-deadline]")).to_contain_text(re.compile(r"Time left to decide: \d+:\d\d"))
    assert not target.exists()
    shot(page, "04-write-waiting")

    step.get_by_role("button", name="Approve once").click()
    expect(run_status(page)).to_have_text("answered")
    expect(page.locator('#steps > li[data-status="succeeded"]')).to_contain_text("filesystem.write_file")
    expect(page.locator("#answer")).not_to_be_empty()
    assert target.read_text() == "good morning to you"
    assert page.locator("#history-list li").count() >= 1
    shot(page, "05-write-done")


def test_a_delete_needs_the_typed_name_and_can_be_undone(page: Page, stack: Stack, folder: Path) -> None:
    log_in(page, stack)
    victim = folder / "old-draft.txt"
    victim.write_text("an early draft\n")
    ask(page, f"Please delete {victim} for me")
    step = waiting_step(page)
    expect(step).to_contain_text("filesystem.delete_file")
    typed = step.get_by_label(re.compile(r"^Type .+ to confirm$"))
    expect(typed).to_be_visible()
    label = step.locator(f'label[for="{typed.get_attribute("id")}"]').inner_text()
    target = re.fullmatch(r"Type (.+) to confirm", label.strip())
    assert target, label

    typed.fill("some-other-file.txt")
    step.get_by_role("button", name="Approve once").click()
    error = step.locator(".inline-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    expect(run_status(page)).to_have_text("awaiting_confirmation")
    assert victim.exists()
    shot(page, "06-delete-wrong-name")

    typed.fill(target.group(1))
    step.get_by_role("button", name="Approve once").click()
    expect(run_status(page)).to_have_text("answered")
    assert not victim.exists()
    shot(page, "07-delete-done")

    done = page.locator('#steps > li[data-status="succeeded"]')
    expect(done).to_contain_text("filesystem.delete_file")
    done.get_by_role("button", name=re.compile(r"^Undo step \d+$")).click()
    expect(page.locator('#steps > li[data-status="undone"]')).to_contain_text("filesystem.delete_file")
    assert victim.read_text() == "an early draft\n"
    shot(page, "08-delete-undone")


def test_a_rejected_move_changes_nothing_and_the_run_says_why(page: Page, stack: Stack, folder: Path) -> None:
    log_in(page, stack)
    source = folder / "budget-notes.txt"
    source.write_text("numbers to check\n")
    destination = folder / "archive" / "budget-notes.txt"
    ask(page, f"Move {source} to {destination}")
    step = waiting_step(page)
    expect(step).to_contain_text("filesystem.move_file")
    shot(page, "09-move-waiting")

    reason = "it still belongs with the other notes"
    step.get_by_label("Reason for rejecting").fill(reason)
    step.get_by_role("button", name="Reject").click()
    expect(run_status(page)).to_have_text(re.compile(r"^(refused|rejected)"))
    expect(page.locator("#answer")).to_contain_text(reason)
    expect(page.locator('#steps > li[data-status="rejected"]')).to_contain_text("filesystem.move_file")
    assert source.exists() and not destination.exists()
    shot(page, "10-move-rejected")


def test_edited_arguments_are_the_ones_used(page: Page, stack: Stack, folder: Path) -> None:
    log_in(page, stack)
    asked_for = folder / "first-name.txt"
    edited_to = folder / "second-name.txt"
    ask(page, f"Save 'edited by hand' as the file {asked_for}")
    step = waiting_step(page)
    expect(step).to_contain_text("filesystem.write_file")
    step.get_by_text("Edit arguments").click()
    box = step.get_by_label("Arguments (JSON)")
    expect(box).to_be_visible()
    arguments = json.loads(box.input_value())
    assert arguments["path"] == str(asked_for), arguments
    arguments["path"] = str(edited_to)
    box.fill(json.dumps(arguments, indent=2))
    shot(page, "11-arguments-edited")

    step.get_by_role("button", name="Approve with these arguments").click()
    expect(run_status(page)).to_have_text("answered")
    done = page.locator('#steps > li[data-status="succeeded"]')
    expect(done.locator(".arguments")).to_contain_text("second-name.txt")
    assert edited_to.read_text() == "edited by hand"
    assert not asked_for.exists()
    shot(page, "12-arguments-used")


def test_edited_arguments_that_break_the_schema_are_refused_inline(page: Page, stack: Stack, folder: Path) -> None:
    log_in(page, stack)
    target = folder / "kept-out.txt"
    ask(page, f"Save 'never written' as the file {target}")
    step = waiting_step(page)
    step.get_by_text("Edit arguments").click()
    box = step.get_by_label("Arguments (JSON)")
    arguments = json.loads(box.input_value())
    arguments["path"] = 42  # the schema wants a string
    box.fill(json.dumps(arguments))
    step.get_by_role("button", name="Approve with these arguments").click()
    expect(step.locator(".inline-error")).not_to_be_empty()
    expect(run_status(page)).to_have_text("awaiting_confirmation")
    shot(page, "13-arguments-refused")
    step.get_by_label("Reason for rejecting").fill("only checking the form")
    step.get_by_role("button", name="Reject").click()
    expect(run_status(page)).to_have_text(FINISHED)
    assert not target.exists()


def test_open_values_are_filled_in_the_form_and_the_step_goes_on(page: Page, stack: Stack) -> None:
    log_in(page, stack)
    ask(page, "Put a meeting named Roadmap review in my calendar")
    step = page.locator('#steps > li[data-status="needs_clarification"]')
    expect(step).to_contain_text("calendar.create_event")
    form = step.locator("form.fill")
    expect(form).to_be_visible()
    form.get_by_label("start", exact=True).fill("2031-02-03T10:00:00")
    form.get_by_label("end", exact=True).fill("2031-02-03T11:00:00")
    shot(page, "14-values-filled")

    form.get_by_role("button", name="Send values").click()
    step = waiting_step(page)
    expect(step.locator(".arguments")).to_contain_text("2031-02-03T10:00:00")
    expect(step.locator(".arguments")).to_contain_text("Roadmap review")
    step.get_by_role("button", name="Approve once").click()
    expect(run_status(page)).to_have_text("answered")
    expect(page.locator('#steps > li[data-status="succeeded"]')).to_contain_text("calendar.create_event")
    shot(page, "15-values-used")


def test_a_session_grant_is_listed_lets_the_tool_run_and_can_be_revoked(page: Page, stack: Stack, folder: Path) -> None:
    log_in(page, stack)
    first = folder / "granted-one.txt"
    ask(page, f"Save 'first of two' as the file {first}")
    step = waiting_step(page)
    step.get_by_role("button", name="Allow for this session").click()
    expect(run_status(page)).to_have_text("answered")
    assert first.read_text() == "first of two"
    grant = page.locator("#grants-list li").filter(has_text="filesystem.write_file")
    expect(grant).to_have_count(1)
    shot(page, "16-grant-listed")

    second = folder / "granted-two.txt"
    ask(page, f"Save 'second of two' as the file {second}")
    expect(run_status(page)).to_have_text("answered")  # asked nobody: the grant covered it
    assert second.read_text() == "second of two"

    grant.get_by_role("button", name=re.compile("Revoke")).click()
    expect(page.locator("#grants-list li")).to_have_count(0)
    expect(page.locator("#grants-empty")).to_be_visible()
    shot(page, "17-grant-revoked")


def test_history_and_audit_show_the_session(page: Page, stack: Stack) -> None:
    log_in(page, stack)
    page.get_by_role("button", name="Refresh history").click()
    runs = page.locator("#history-list .history-run")
    expect(runs.first).to_be_visible()
    assert runs.count() >= 8, runs.all_inner_texts()
    runs.filter(has_text="greeting.txt").click()
    expect(page.locator("#run-text")).to_contain_text("greeting.txt")
    expect(run_status(page)).to_have_text("answered")

    page.get_by_role("button", name="Show audit trail").click()
    table = page.locator("#audit-table")
    expect(table).to_be_visible()
    rows = table.locator("tbody tr")
    expect(rows.filter(has_text="filesystem.write_file").first).to_be_visible()
    expect(rows.filter(has_text="filesystem.delete_file").first).to_be_visible()
    rejected = rows.filter(has_text="filesystem.move_file").filter(has_text="rejected")
    expect(rejected.first).to_contain_text("it still belongs with the other notes")
    shot(page, "18-audit")
