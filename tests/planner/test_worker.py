"""The planner's orchestration against a real Redis: steps routed and proposed one at a time, the run's
one record written with its events, sessions kept, answers streamed, redeliveries harmless.

The filter and the router are stood in for by `Routing` below, which records what it was asked and
proposes the first tool of the step's server: these tests are about the order of the work, not the
choice of tool (the stack tests run the real services)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from services.planner.worker import Catalogue, PlannerWorker, Planning
from switchboard import keys, runs
from switchboard.approvals import refusal
from switchboard.envelope import Envelope
from switchboard.paths import PathPolicy
from switchboard.rpc import UNKNOWN_TOOL_RETRY_SECONDS
from switchboard.runs import RunStore
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


POLICY_KEY = "policy-key"


class Routing:
    """Stands in for the filter and the router: records each request and routes it to `tool`."""

    def __init__(self, tool: str = TOOLS[0].name) -> None:
        self.tool = tool
        self.requests: list[pb.RouteRequest] = []

    async def route(self, request: pb.RouteRequest) -> tuple[pb.ToolCall, float]:
        self.requests.append(request)
        # Arguments that differ from step to step, as real ones do (the same call twice is judged a repeat).
        arguments = json.dumps({"words": request.text, "handed": request.inputs_json})
        return pb.ToolCall(tool=self.tool, arguments_json=arguments, outcome=pb.ROUTE_OUTCOME_ROUTED), 1.0


@pytest.fixture
def routing() -> Routing:
    return Routing()


@pytest.fixture
def worker(redis: aioredis.Redis, tmp_path: Path, routing: Routing) -> PlannerWorker:
    catalogue = Catalogue()
    catalogue.load(TOOLS)
    return PlannerWorker(redis, Planning(catalogue, PathPolicy((tmp_path,), tmp_path)), 1500, routing, POLICY_KEY)


async def turn(redis: aioredis.Redis, run_id: str, text: str, session: str = "s1", dry_run: bool = False) -> Envelope:
    """A turn, with the run's record made as the gateway makes it."""
    await RunStore(redis, "gateway").create(runs.new_run(run_id, session, text, dry_run))
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


def only_call(out: list[Emit]) -> pb.ToolCall:
    """The one call sent to the tool host: a read, with the policy's approval of it."""
    [item] = out
    assert item.stream == keys.APPROVED
    call = pb.ToolCall.FromString(item.envelope.body)
    assert call.approval.kind == pb.GRANT_KIND_POLICY
    named = {"run_id": call.run_id, "step": call.step, "tool": call.tool, "arguments_json": call.arguments_json}
    assert refusal({pb.GRANT_KIND_POLICY: POLICY_KEY}, call.approval, **named, tier=pb.CONFIRM_TIER_RUN) is None
    return call


async def finished(redis: aioredis.Redis, out: list[Emit], run_id: str) -> pb.Run:
    assert out == []  # the answer is written into the record, not sent on
    run = await RunStore(redis, "test").get(run_id)
    assert run.status in runs.FINAL_STATUSES
    return run


async def events(redis: aioredis.Redis, run_id: str) -> list[pb.RunEvent]:
    entries = await redis.xrange(keys.run_events_key(run_id))
    return [pb.RunEvent.FromString(fields[b"event"]) for _, fields in entries]


async def answer_events(redis: aioredis.Redis, run_id: str) -> str:
    return "".join(e.message for e in await events(redis, run_id) if e.kind == pb.EVENT_KIND_ANSWER)


async def test_a_compound_request_goes_out_one_step_at_a_time_and_answers(
    worker: PlannerWorker, routing: Routing, redis: aioredis.Redis, tmp_path: Path
) -> None:
    text = f"Find the PDFs in {tmp_path}, extract the text of each, and save a summary to notes.md"
    first = only_call(list(await worker.on_turn(await turn(redis, "r1", text))))
    assert first.step == 1 and routing.requests[-1].text == f"Find the PDFs in {tmp_path}"
    assert list(first.hops) == [keys.HOP_RANK, keys.HOP_ROUTE]
    found = {
        "matches": [{"name": "a.pdf", "path": f"{tmp_path}/a.pdf"}, {"name": "b.pdf", "path": f"{tmp_path}/b.pdf"}]
    }
    searched = result("r1", 1, "filesystem.search_files", found, path=str(tmp_path))
    second = only_call(list(await worker.on_result(searched)))
    assert json.loads(routing.requests[-1].inputs_json)["paths"][0] == f"{tmp_path}/a.pdf"
    # A result handled again sends the same proposal, under the same key, and appends no event twice.
    before = await events(redis, "r1")
    again = list(await worker.on_result(searched))
    assert only_call(again).step == second.step == 2 and again[0].envelope.idempotency_key == "r1:2:planner"
    assert again[0].envelope.body != list(await worker.on_result(searched))[0].envelope.body  # a fresh nonce each
    assert await events(redis, "r1") == before
    third = only_call(
        list(await worker.on_result(result("r1", 2, "document.extract_text", {"text": "Alpha text."}, path="a")))
    )
    save = only_call(
        list(await worker.on_result(result("r1", 3, "document.extract_text", {"text": "Beta."}, path="b")))
    )
    assert third.step == 3 and save.step == 4
    inputs = json.loads(routing.requests[-1].inputs_json)
    assert "Alpha text." in inputs["text"] and "Beta." in inputs["text"] and inputs["base_dir"] == str(tmp_path)
    written = {"success": True, "path": f"{tmp_path}/notes.md", "undo": [{"kind": "trash"}]}
    out = list(await worker.on_result(result("r1", 4, "filesystem.write_file", written, path="notes.md")))
    end = await finished(redis, out, "r1")
    assert end.status == pb.RUN_STATUS_ANSWERED and "Done: 4 of 4 steps ran." in end.answer
    streamed = await answer_events(redis, "r1")
    assert streamed == end.answer + "\n"  # every line went out once, in order
    # One record: the steps hold the results, which the planner's state does not repeat.
    assert [s.status for s in end.steps] == [pb.STEP_STATUS_SUCCEEDED] * 4
    assert json.loads(end.steps[1].result_json) == {"text": "Alpha text."}
    assert "Alpha text." not in json.dumps(json.loads(end.orchestration_json)["outcomes"])
    memory = json.loads(await redis.get(keys.session_key("s1")))
    assert memory["turns"][0]["subjects"][0] == f"{tmp_path}/notes.md"


async def test_a_refused_request_ends_at_once_with_the_reason(worker: PlannerWorker, redis: aioredis.Redis) -> None:
    out = list(await worker.on_turn(await turn(redis, "r2", "Show me the contents of /etc/shadow")))
    end = await finished(redis, out, "r2")
    assert end.status == pb.RUN_STATUS_REFUSED and "/etc/shadow" in end.answer
    assert "/etc/shadow" in await answer_events(redis, "r2")


async def test_a_follow_up_turn_is_not_vague_once_the_session_has_history(
    worker: PlannerWorker, routing: Routing, redis: aioredis.Redis, tmp_path: Path
) -> None:
    # Without history "that PDF" names nothing: the step is routed as a dry run, to show its tool, and
    # the run asks back instead of running it.
    out = list(await worker.on_turn(await turn(redis, "r3", "extract the text of that PDF", session="s3")))
    # The step is routed (to show its tool), held as a question and settled at once: nothing is sent.
    vague = await finished(redis, out, "r3")
    assert vague.steps[0].status == pb.STEP_STATUS_NEEDS_CLARIFICATION
    assert vague.status == pb.RUN_STATUS_NEEDS_CLARIFICATION
    assert "would call filesystem.search_files" in vague.answer and "nothing was run" in vague.answer
    listed = {"entries": [{"name": "r.pdf", "path": f"{tmp_path}/r.pdf"}]}
    only_call(list(await worker.on_turn(await turn(redis, "r4", f"List the files in {tmp_path}", session="s3"))))
    out = list(await worker.on_result(result("r4", 1, "filesystem.list_dir", listed, path=str(tmp_path))))
    await finished(redis, out, "r4")
    only_call(list(await worker.on_turn(await turn(redis, "r5", "extract the text of that PDF", session="s3"))))
    assert json.loads(routing.requests[-1].inputs_json)["paths"][0] == f"{tmp_path}/r.pdf"


async def test_a_turn_that_only_gives_the_open_value_completes_the_step_before(
    worker: PlannerWorker, routing: Routing, redis: aioredis.Redis
) -> None:
    text = "add an event called Retro to my calendar"
    only_call(list(await worker.on_turn(await turn(redis, "r7", text, session="s7"))))
    open_step = result("r7", 1, "calendar.create_event", None, pb.STEP_STATUS_NEEDS_CLARIFICATION, title="Retro")
    asked = await finished(redis, list(await worker.on_result(open_step)), "r7")
    assert asked.status == pb.RUN_STATUS_NEEDS_CLARIFICATION and "calendar.create_event" in asked.answer
    given = only_call(list(await worker.on_turn(await turn(redis, "r8", "tomorrow from 3pm to 4pm", session="s7"))))
    assert given.step == 1
    assert routing.requests[-1].text == "add an event called Retro to my calendar tomorrow from 3pm to 4pm"
    # A new instruction is a new request, not values for the old one.
    fresh = only_call(list(await worker.on_turn(await turn(redis, "r9", "list my tasks", session="s7"))))
    assert fresh.step == 1 and routing.requests[-1].text == "list my tasks"


async def test_a_catalogue_taken_while_the_tool_host_started_is_completed_when_a_tool_is_new(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    catalogue = Catalogue()
    catalogue.load(TOOLS[:1])  # the tool host listed only the servers that were up
    catalogue.loaded_at -= UNKNOWN_TOOL_RETRY_SECONDS + 1  # and that was a moment ago

    async def list_tools() -> list[pb.ToolInfo]:
        return list(TOOLS)

    planning = Planning(catalogue, PathPolicy((tmp_path,), tmp_path))
    worker = PlannerWorker(redis, planning, 1500, Routing(), POLICY_KEY, list_tools)
    only_call(list(await worker.on_turn(await turn(redis, "r6", f"Write 'hi' to {tmp_path}/a.txt", session="s6"))))
    written = {"success": True, "path": f"{tmp_path}/a.txt", "undo": [{"kind": "remove_created"}]}
    out = list(await worker.on_result(result("r6", 1, "filesystem.write_file", written, path="a.txt")))
    end = await finished(redis, out, "r6")
    assert "filesystem.write_file" in catalogue.mutating
    assert "done (changed)" in end.answer


async def test_a_turn_handled_again_proposes_its_step_again_without_a_second_write(
    worker: PlannerWorker, redis: aioredis.Redis, tmp_path: Path
) -> None:
    envelope = await turn(redis, "r10", f"List the files in {tmp_path}")
    first = only_call(list(await worker.on_turn(envelope)))
    record = await RunStore(redis, "test").get("r10")
    again = only_call(list(await worker.on_turn(envelope)))
    assert (again.step, again.intent) == (first.step, first.intent)
    assert await RunStore(redis, "test").get("r10") == record


async def test_a_planner_that_gives_up_ends_the_run_as_failed(worker: PlannerWorker, redis: aioredis.Redis) -> None:
    envelope = await turn(redis, "r11", "List my files")
    assert await worker.give_up(envelope, RuntimeError("the router is down")) == []
    end = await RunStore(redis, "test").get("r11")
    assert end.status == pb.RUN_STATUS_FAILED and "the router is down" in end.answer
    assert [e.kind for e in await events(redis, "r11")] == [pb.EVENT_KIND_FINISHED]


async def test_a_change_waits_for_the_person_and_nothing_is_sent(redis: aioredis.Redis, tmp_path: Path) -> None:
    catalogue = Catalogue()
    catalogue.load(TOOLS)
    planning = Planning(catalogue, PathPolicy((tmp_path,), tmp_path))
    worker = PlannerWorker(redis, planning, 1500, Routing("filesystem.write_file"), POLICY_KEY)
    out = list(await worker.on_turn(await turn(redis, "r12", f"Write 'hi' to {tmp_path}/a.txt")))
    assert out == []  # only the gateway, on the person's word, can send it
    run = await RunStore(redis, "test").get("r12")
    assert run.status == pb.RUN_STATUS_AWAITING_CONFIRMATION
    assert run.steps[0].status == pb.STEP_STATUS_AWAITING_CONFIRMATION and run.steps[0].confirmation_required
    kinds = [e.kind for e in await events(redis, "r12")]
    assert kinds[-2:] == [pb.EVENT_KIND_STEP_PLANNED, pb.EVENT_KIND_AWAITING_CONFIRMATION]


async def test_a_dry_run_settles_every_step_in_one_go(
    worker: PlannerWorker, redis: aioredis.Redis, tmp_path: Path
) -> None:
    text = f"List the files in {tmp_path}, then read {tmp_path}/a.txt"
    out = list(await worker.on_turn(await turn(redis, "r13", text, dry_run=True)))
    run = await finished(redis, out, "r13")
    assert [s.status for s in run.steps] == [pb.STEP_STATUS_SKIPPED, pb.STEP_STATUS_SKIPPED]


# ---- what the planner's metrics say ----


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def caught(mode: str) -> float:
    return sample("switchboard_failure_modes_total", stage="planner", mode=mode)


async def test_a_step_that_waits_for_the_person_is_a_confirmation_requested(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    catalogue = Catalogue()
    catalogue.load(TOOLS)
    planning = Planning(catalogue, PathPolicy((tmp_path,), tmp_path))
    worker = PlannerWorker(redis, planning, 1500, Routing("filesystem.write_file"), POLICY_KEY)
    before = sample("switchboard_confirmations_requested_total", tier="confirm")
    assert REGISTRY.get_sample_value("switchboard_confirmations_requested_total", {"tier": "typed"}) is not None
    await worker.on_turn(await turn(redis, "m1", f"Write 'hi' to {tmp_path}/a.txt"))
    assert sample("switchboard_confirmations_requested_total", tier="confirm") == before + 1


async def test_a_finished_run_is_counted_once(worker: PlannerWorker, redis: aioredis.Redis) -> None:
    before = sample("switchboard_runs_finished_total", status="refused")
    envelope = await turn(redis, "m2", "Show me the contents of /etc/shadow")
    await finished(redis, list(await worker.on_turn(envelope)), "m2")
    assert sample("switchboard_runs_finished_total", status="refused") == before + 1
    assert caught("turn_refused") >= 1
    await worker.on_turn(envelope)  # handled again
    await worker.give_up(envelope, RuntimeError("late"))  # and given up on: it is finished already
    assert sample("switchboard_runs_finished_total", status="refused") == before + 1


async def test_a_change_its_result_does_not_confirm_is_a_confabulated_claim_caught(
    worker: PlannerWorker, redis: aioredis.Redis, tmp_path: Path
) -> None:
    await worker.on_turn(await turn(redis, "m3", f"Write 'hi' to {tmp_path}/a.txt"))
    before = caught("confabulated_claim")
    unconfirmed = result("m3", 1, "filesystem.write_file", {"success": True}, path="a.txt")
    end = await finished(redis, list(await worker.on_result(unconfirmed)), "m3")
    assert "cannot say it did" in end.answer
    assert caught("confabulated_claim") == before + 1
    await worker.on_result(unconfirmed)  # the same result again changes and counts nothing
    assert caught("confabulated_claim") == before + 1


async def test_a_confirmed_change_is_no_confabulation(
    worker: PlannerWorker, redis: aioredis.Redis, tmp_path: Path
) -> None:
    await worker.on_turn(await turn(redis, "m4", f"Write 'hi' to {tmp_path}/a.txt"))
    before = caught("confabulated_claim")
    written = {"success": True, "path": f"{tmp_path}/a.txt", "undo": [{"kind": "remove_created"}]}
    await worker.on_result(result("m4", 1, "filesystem.write_file", written, path="a.txt"))
    assert caught("confabulated_claim") == before


async def test_a_run_the_step_limit_stops_with_work_left_is_a_premature_stop(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    catalogue = Catalogue()
    catalogue.load(TOOLS)
    planning = Planning(catalogue, PathPolicy((tmp_path,), tmp_path), max_steps=1)
    worker = PlannerWorker(redis, planning, 1500, Routing(), POLICY_KEY)
    text = f"List the files in {tmp_path}, then read {tmp_path}/a.txt"
    only_call(list(await worker.on_turn(await turn(redis, "m5", text))))
    before = caught("premature_stop")
    listed = result("m5", 1, "filesystem.search_files", {"matches": []}, path=str(tmp_path))
    end = await finished(redis, list(await worker.on_result(listed)), "m5")
    assert "Stopped after 1 steps" in end.answer
    assert caught("premature_stop") == before + 1


async def test_older_turns_folded_out_of_a_sessions_memory_are_a_context_eviction(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    catalogue = Catalogue()
    catalogue.load(TOOLS)
    worker = PlannerWorker(redis, Planning(catalogue, PathPolicy((tmp_path,), tmp_path)), 10, Routing(), POLICY_KEY)
    refused = "Show me the contents of /etc/shadow"
    await worker.on_turn(await turn(redis, "m6", refused, session="s-evict"))
    before = caught("context_eviction")
    await worker.on_turn(await turn(redis, "m7", refused, session="s-evict"))
    assert caught("context_eviction") == before + 1
    memory = json.loads(await redis.get(keys.session_key("s-evict")))
    assert len(memory["turns"]) == 1 and memory["summary"]
