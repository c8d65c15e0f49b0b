"""The shared metrics: a gRPC stage's wait told from its work, the local model's timings and span, the
streams' gauges, runs counted once when they finish, and series created at 0 before anything happens.

Values are read from the process's registry (`REGISTRY.get_sample_value`), before and after the event."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from switchboard import keys, metrics, runs
from switchboard.llm import LocalModel, chosen_option, completion_timings, observe_completion
from switchboard.metrics import FailureMode, counted_as_waiting, start_failure_modes, start_series, timed_call
from switchboard.runs import RunStore
from switchboard.settings import default_llm_path
from switchboard.streams import ensure_group, group_lag, refresh_stream_gauges
from switchboard.v1 import switchboard_pb2 as pb


def sample(name: str, **labels: str) -> float:
    """A sample's value now; 0 for a series not created yet."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def failures(stage: str, mode: FailureMode) -> float:
    return sample("switchboard_failure_modes_total", stage=stage, mode=mode.value)


# ---- a gRPC stage's wait and work ----


async def test_a_timed_call_counts_the_wait_for_a_thread_and_the_model_apart_from_the_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # queued at 10, taken up by a thread at 11, waits for the model from 12 to 15, done at 20.
    clock = iter([10.0, 11.0, 12.0, 15.0, 20.0])
    monkeypatch.setattr(metrics, "perf_clock", lambda: next(clock))
    wait = ("switchboard_stage_wait_seconds_sum", {"stage": "test-split", "queue": "rpc"})
    work = ("switchboard_stage_work_seconds_sum", {"stage": "test-split"})
    before = sample(wait[0], **wait[1]), sample(work[0], **work[1])

    def answer() -> str:
        with counted_as_waiting():
            return "done"

    assert await timed_call("test-split", answer) == "done"
    monkeypatch.undo()
    assert sample(wait[0], **wait[1]) - before[0] == pytest.approx(1.0 + 3.0)
    assert sample(work[0], **work[1]) - before[1] == pytest.approx(20.0 - 11.0 - 3.0)


async def test_a_timed_call_that_fails_is_still_timed() -> None:
    count = ("switchboard_stage_work_seconds_count", {"stage": "test-fails"})
    before = sample(*count[:1], **count[1])

    def broken() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await timed_call("test-fails", broken)
    assert sample(*count[:1], **count[1]) == before + 1


# ---- the local model ----


def test_a_completions_timings_come_from_its_usage_and_llama_cpps_prompt_time() -> None:
    timings = completion_timings(
        {"prompt_tokens": 40, "completion_tokens": 7}, prompt_eval_ms=250.0, elapsed_seconds=1.0
    )
    assert (timings.prompt_tokens, timings.generated_tokens) == (40, 7)
    assert timings.prompt_eval_seconds == pytest.approx(0.25)
    assert timings.generation_seconds == pytest.approx(0.75)
    # A prompt found whole in the cache costs nothing to evaluate; a clock never makes time negative.
    assert completion_timings({}, 0.0, 0.1).prompt_eval_seconds == 0.0
    assert completion_timings({}, 500.0, 0.1).generation_seconds == 0.0


def test_a_completion_is_observed_and_an_empty_one_is_an_empty_reply() -> None:
    timings = completion_timings({"prompt_tokens": 12, "completion_tokens": 3}, 10.0, 0.05)
    tokens = sample("switchboard_model_prompt_tokens_sum", stage="test-model")
    empty = failures("test-model", FailureMode.EMPTY_REPLY)
    observe_completion("test-model", timings, '{"a": 1}')
    assert sample("switchboard_model_prompt_tokens_sum", stage="test-model") == tokens + 12
    assert failures("test-model", FailureMode.EMPTY_REPLY) == empty
    observe_completion("test-model", timings, "  ")
    assert failures("test-model", FailureMode.EMPTY_REPLY) == empty + 1


def test_a_chosen_name_that_is_no_option_is_a_wrong_tool_name_resolved_or_not() -> None:
    options = ["filesystem.read_file", "filesystem.list_dir"]
    resolved = failures("test-choice", FailureMode.UNKNOWN_TOOL_RESOLVED)
    unresolved = failures("test-choice", FailureMode.UNKNOWN_TOOL_UNRESOLVED)
    assert chosen_option("test-choice", "filesystem.list_dir", options) == "filesystem.list_dir"
    assert failures("test-choice", FailureMode.UNKNOWN_TOOL_RESOLVED) == resolved
    assert chosen_option("test-choice", "filesystem.list", options) == "filesystem.list_dir"  # cut short
    assert failures("test-choice", FailureMode.UNKNOWN_TOOL_RESOLVED) == resolved + 1
    assert chosen_option("test-choice", "shell.run", options) == "filesystem.read_file"
    assert failures("test-choice", FailureMode.UNKNOWN_TOOL_UNRESOLVED) == unresolved + 1
    # An empty answer is an empty reply (counted by the completion), not a wrong name.
    assert chosen_option("test-choice", "", options) == "filesystem.read_file"
    assert failures("test-choice", FailureMode.UNKNOWN_TOOL_UNRESOLVED) == unresolved + 1


_exporter = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "tests/conftest.py installs a real provider"
    provider.add_span_processor(SimpleSpanProcessor(_exporter))
    yield _exporter
    _exporter.clear()


@pytest.fixture(scope="module")
def model() -> LocalModel:
    path = default_llm_path()
    if not path.is_file():
        pytest.fail(f"{path} is missing; `make models` fetches it")
    return LocalModel(path, n_ctx=512, stage="test-llm")


def test_a_real_completion_records_its_tokens_and_times_and_a_genai_span(
    model: LocalModel, spans: InMemorySpanExporter
) -> None:
    # Made at 0 when the model loaded, so a dashboard shows "none yet".
    assert (
        REGISTRY.get_sample_value("switchboard_failure_modes_total", {"stage": "test-llm", "mode": "empty_reply"}) == 0
    )
    names = ["prompt_tokens", "generated_tokens", "prompt_eval_seconds", "generation_seconds"]
    before = {n: sample(f"switchboard_model_{n}_sum", stage="test-llm") for n in names}
    counted = sample("switchboard_model_prompt_tokens_count", stage="test-llm")
    spans.clear()
    picked = model.choose("<|im_start|>user\nPick a colour.<|im_end|>\n<|im_start|>assistant\n", ["red", "blue"])
    assert picked in ("red", "blue")
    assert sample("switchboard_model_prompt_tokens_count", stage="test-llm") == counted + 1
    grown = {n: sample(f"switchboard_model_{n}_sum", stage="test-llm") - before[n] for n in names}
    assert grown["prompt_tokens"] > 5 and grown["generated_tokens"] >= 1
    assert grown["prompt_eval_seconds"] > 0 and grown["generation_seconds"] > 0
    [span] = [s for s in spans.get_finished_spans() if s.name == f"text_completion {default_llm_path().stem}"]
    assert span.kind == trace.SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "text_completion"
    assert attributes["gen_ai.provider.name"] == attributes["gen_ai.system"] == "llama.cpp"
    assert attributes["gen_ai.request.model"] == default_llm_path().stem
    assert attributes["gen_ai.request.max_tokens"] == 48 and attributes["gen_ai.request.temperature"] == 0.0
    assert attributes["gen_ai.usage.input_tokens"] == grown["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == grown["generated_tokens"]
    assert failures("test-llm", FailureMode.EMPTY_REPLY) == 0.0  # the grammar admits only the options


# ---- streams ----


async def test_stream_gauges_show_length_pending_lag_and_dead_letters(redis: aioredis.Redis) -> None:
    await ensure_group(redis, keys.TURNS, keys.GROUP_PLANNER)
    for n in range(5):
        await redis.xadd(keys.TURNS, {"n": str(n)})
    await redis.xreadgroup(keys.GROUP_PLANNER, "c1", {keys.TURNS: ">"}, count=2)  # 2 delivered, 3 not
    await redis.xadd(keys.DEAD_LETTERS, {"error": "boom"})
    await refresh_stream_gauges(redis, [keys.TURNS, keys.APPROVED])
    assert sample("switchboard_stream_length", stream=keys.TURNS) == 5
    assert sample("switchboard_stream_pending", stream=keys.TURNS, group=keys.GROUP_PLANNER) == 2
    assert sample("switchboard_stream_lag", stream=keys.TURNS, group=keys.GROUP_PLANNER) == 3
    assert sample("switchboard_stream_length", stream=keys.DEAD_LETTERS) == 1
    assert sample("switchboard_stream_length", stream=keys.APPROVED) == 0  # no stream yet: empty


async def test_a_lag_redis_cannot_say_is_counted_after_the_last_delivered_entry(redis: aioredis.Redis) -> None:
    ids = [await redis.xadd("sb:test-lag", {"n": str(n)}) for n in range(2500)]
    info = {"name": "g", "last-delivered-id": ids[9], "lag": None}
    assert await group_lag(redis, "sb:test-lag", info) == 2490
    assert await group_lag(redis, "sb:test-lag", {**info, "lag": 7}) == 7


# ---- runs ----


async def test_a_run_is_counted_once_when_it_reaches_a_final_status(redis: aioredis.Redis) -> None:
    store = RunStore(redis, "test")
    await store.create(runs.new_run("m1", "s", "list my files", False))
    before = sample("switchboard_runs_finished_total", status="answered")
    await store.update(
        "m1", lambda run: runs.apply_proposal(run, pb.ToolCall(step=1), [], pb.STEP_STATUS_APPROVED, False)
    )
    assert sample("switchboard_runs_finished_total", status="answered") == before
    await store.update("m1", lambda run: runs.apply_finished(run, pb.RUN_STATUS_ANSWERED, "Done."))
    assert sample("switchboard_runs_finished_total", status="answered") == before + 1
    # Written again (a message handled twice), it is not finished twice.
    await store.update("m1", lambda run: runs.apply_finished(run, pb.RUN_STATUS_ANSWERED, "Done."))
    assert sample("switchboard_runs_finished_total", status="answered") == before + 1
    # Taken up again by a filled value and finished again: a second finish.
    await store.update("m1", runs.apply_reopened)
    await store.update("m1", lambda run: runs.apply_finished(run, pb.RUN_STATUS_ANSWERED, "Done again."))
    assert sample("switchboard_runs_finished_total", status="answered") == before + 2


# ---- series that exist before anything happens ----


def test_started_series_are_scraped_at_zero() -> None:
    assert (
        REGISTRY.get_sample_value("switchboard_failure_modes_total", {"stage": "test-start", "mode": "retry"}) is None
    )
    start_failure_modes("test-start", [FailureMode.RETRY])
    assert REGISTRY.get_sample_value("switchboard_failure_modes_total", {"stage": "test-start", "mode": "retry"}) == 0
    start_series(metrics.TURNS_ACCEPTED, [{"api": "test-api"}])
    assert REGISTRY.get_sample_value("switchboard_turns_accepted_total", {"api": "test-api"}) == 0


def test_every_proto_failure_mode_has_a_label() -> None:
    for value in pb.FailureMode.values():
        if value:
            assert metrics.proto_failure_mode(value).value == pb.FailureMode.Name(value).lower().removeprefix(
                "failure_mode_"
            )
