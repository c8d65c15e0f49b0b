"""The planner's stream work against a real Redis: steps out one at a time, sessions kept, answers
streamed, redeliveries harmless."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.planner.worker import Catalogue, PlannerWorker, Planning
from switchboard import keys
from switchboard.envelope import Envelope
from switchboard.events import ANSWER
from switchboard.paths import PathPolicy
from switchboard.rpc import UNKNOWN_TOOL_RETRY_SECONDS
from switchboard.streams import Emit, emit
from switchboard.v1 import switchboard_pb2 as pb

TOOLS = [
    pb.ToolInfo(name="filesystem.search_files", server="filesystem", description="Find files by name pattern"),
    pb.ToolInfo(name="document.extract_text", server="document", description="Extract the text of a document"),
    pb.ToolInfo(
        name="filesystem.write_file",
        server="filesystem",
        description="Write text to a file",
        confirmation_required=True,
    ),
]


@pytest.fixture
def worker(redis: aioredis.Redis, tmp_path: Path) -> PlannerWorker:
    catalogue = Catalogue()
    catalogue.load(TOOLS)
    return PlannerWorker(redis, Planning(catalogue, PathPolicy((tmp_path,), tmp_path)), session_tokens=1500)


def turn(run_id: str, text: str, session: str = "s1", dry_run: bool = False) -> Envelope:
    body = pb.Turn(run_id=run_id, session_id=session, text=text, dry_run=dry_run).SerializeToString()
    return emit(keys.TURNS, run_id, 0, f"{run_id}:0:gateway", body).envelope


def result(
    run_id: str, step: int, tool: str, content: object, status: int = pb.STEP_STATUS_SUCCEEDED, **arguments: object
) -> Envelope:
    body = pb.StepResult(
        run_id=run_id,
        step=step,
        tool=tool,
        arguments_json=json.dumps(arguments),
        content_json=json.dumps(content),
        status=status,  # type: ignore[arg-type]
    ).SerializeToString()
    return emit(keys.RESULTS, run_id, step, f"{run_id}:{step}:toolhost", body).envelope


def only_step(out: list[Emit]) -> pb.Step:
    [item] = out
    assert item.stream == keys.STEPS
    return pb.Step.FromString(item.envelope.body)


def finished(out: list[Emit]) -> pb.RunFinished:
    [item] = out
    assert item.stream == keys.FINISHED
    return pb.RunFinished.FromString(item.envelope.body)


async def answer_events(redis: aioredis.Redis, run_id: str) -> str:
    entries = await redis.xrange(keys.run_events_key(run_id))
    events = [pb.RunEvent.FromString(fields[b"event"]) for _, fields in entries]
    return "".join(e.message for e in events if e.kind == ANSWER)


async def test_a_compound_request_goes_out_one_step_at_a_time_and_answers(
    worker: PlannerWorker, redis: aioredis.Redis, tmp_path: Path
) -> None:
    text = f"Find the PDFs in {tmp_path}, extract the text of each, and save a summary to notes.md"
    first = only_step(list(await worker.on_turn(turn("r1", text))))
    assert first.number == 1 and first.intent == f"Find the PDFs in {tmp_path}"
    found = {
        "matches": [{"name": "a.pdf", "path": f"{tmp_path}/a.pdf"}, {"name": "b.pdf", "path": f"{tmp_path}/b.pdf"}]
    }
    second = only_step(
        list(await worker.on_result(result("r1", 1, "filesystem.search_files", found, path=str(tmp_path))))
    )
    assert json.loads(second.inputs_json)["paths"][0] == f"{tmp_path}/a.pdf"
    # A redelivered result changes nothing: the same step again, under the same key.
    again = list(await worker.on_result(result("r1", 1, "filesystem.search_files", found, path=str(tmp_path))))
    assert only_step(again).number == 2 and again[0].envelope.idempotency_key == "r1:2:planner"
    third = only_step(
        list(await worker.on_result(result("r1", 2, "document.extract_text", {"text": "Alpha text."}, path="a")))
    )
    save = only_step(
        list(await worker.on_result(result("r1", 3, "document.extract_text", {"text": "Beta."}, path="b")))
    )
    assert third.number == 3 and save.number == 4
    inputs = json.loads(save.inputs_json)
    assert "Alpha text." in inputs["text"] and "Beta." in inputs["text"] and inputs["base_dir"] == str(tmp_path)
    written = {"success": True, "path": f"{tmp_path}/notes.md", "undo": [{"kind": "trash"}]}
    end = finished(list(await worker.on_result(result("r1", 4, "filesystem.write_file", written, path="notes.md"))))
    assert end.status == pb.RUN_STATUS_ANSWERED and "Done: 4 of 4 steps ran." in end.answer
    streamed = await answer_events(redis, "r1")
    assert streamed == end.answer + "\n"  # every line went out once, in order
    memory = json.loads(await redis.get(keys.session_key("s1")))
    assert memory["turns"][0]["subjects"][0] == f"{tmp_path}/notes.md"


async def test_a_refused_request_ends_at_once_with_the_reason(worker: PlannerWorker, redis: aioredis.Redis) -> None:
    end = finished(list(await worker.on_turn(turn("r2", "Show me the contents of /etc/shadow"))))
    assert end.status == pb.RUN_STATUS_REFUSED and "/etc/shadow" in end.answer
    assert "/etc/shadow" in await answer_events(redis, "r2")


async def test_a_follow_up_turn_is_not_vague_once_the_session_has_history(
    worker: PlannerWorker, tmp_path: Path
) -> None:
    # Without history "that PDF" names nothing: the step is routed as a dry run, to show its tool, and
    # the run asks back instead of running it.
    held = only_step(list(await worker.on_turn(turn("r3", "extract the text of that PDF", session="s3"))))
    assert held.dry_run and held.held  # the gateway records it as a question, never as a call to run
    asked = result("r3", 1, "document.extract_text", None, pb.STEP_STATUS_NEEDS_CLARIFICATION)
    vague = finished(list(await worker.on_result(asked)))
    assert vague.status == pb.RUN_STATUS_NEEDS_CLARIFICATION
    assert "would call document.extract_text" in vague.answer and "nothing was run" in vague.answer
    listed = {"entries": [{"name": "r.pdf", "path": f"{tmp_path}/r.pdf"}]}
    only_step(list(await worker.on_turn(turn("r4", f"List the files in {tmp_path}", session="s3"))))
    finished(list(await worker.on_result(result("r4", 1, "filesystem.list_dir", listed, path=str(tmp_path)))))
    follow = only_step(list(await worker.on_turn(turn("r5", "extract the text of that PDF", session="s3"))))
    assert json.loads(follow.inputs_json)["paths"][0] == f"{tmp_path}/r.pdf"


async def test_a_turn_that_only_gives_the_open_value_completes_the_step_before(worker: PlannerWorker) -> None:
    only_step(list(await worker.on_turn(turn("r7", "add an event called Retro to my calendar", session="s7"))))
    open_step = result("r7", 1, "calendar.create_event", None, pb.STEP_STATUS_NEEDS_CLARIFICATION, title="Retro")
    asked = finished(list(await worker.on_result(open_step)))
    assert asked.status == pb.RUN_STATUS_NEEDS_CLARIFICATION and "calendar.create_event" in asked.answer
    given = only_step(list(await worker.on_turn(turn("r8", "tomorrow from 3pm to 4pm", session="s7"))))
    assert given.intent == "add an event called Retro to my calendar tomorrow from 3pm to 4pm"
    # A new instruction is a new request, not values for the old one.
    fresh = only_step(list(await worker.on_turn(turn("r9", "list my tasks", session="s7"))))
    assert fresh.intent == "list my tasks"


async def test_a_catalogue_taken_while_the_tool_host_started_is_completed_when_a_tool_is_new(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    catalogue = Catalogue()
    catalogue.load(TOOLS[:1])  # the tool host listed only the servers that were up
    catalogue.loaded_at -= UNKNOWN_TOOL_RETRY_SECONDS + 1  # and that was a moment ago

    async def list_tools() -> list[pb.ToolInfo]:
        return list(TOOLS)

    worker = PlannerWorker(redis, Planning(catalogue, PathPolicy((tmp_path,), tmp_path)), 1500, list_tools)
    only_step(list(await worker.on_turn(turn("r6", f"Write 'hi' to {tmp_path}/a.txt", session="s6"))))
    written = {"success": True, "path": f"{tmp_path}/a.txt", "undo": [{"kind": "remove_created"}]}
    end = finished(list(await worker.on_result(result("r6", 1, "filesystem.write_file", written, path="a.txt"))))
    assert "filesystem.write_file" in catalogue.mutating
    assert "done (changed)" in end.answer
