"""The confirmation policy: what becomes of a routed call, judged against its run's record.

Pure logic: nothing here reads or writes Redis, and nothing here can let a change run. The planner
applies it to each call it routes, inside the record's transaction; a call the policy lets through
at once gets an approval the tool host honours only for a call whose tier is `run` by the tool host's
own reckoning, and a call that waits for the person runs only with the approval the gateway grants
when the person confirms it (or a standing grant the person gave, for a call that asks for a click).

The tier of a call: what the tool's declared effects ask for (`switchboard.preview`: a read runs, a
change asks for a click, a destructive call or an overwrite asks for its target to be typed), unless
the policy file says otherwise for the tool or its server (`PolicyFile`); an unknown tool asks for a
click.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from switchboard.errors import ConfigurationError
from switchboard.failures import REPEATED_CALL
from switchboard.paths import PathPolicy, PathVerdict, named_paths
from switchboard.runs import step_record
from switchboard.v1 import switchboard_pb2 as pb


class Policy(Enum):
    """What becomes of a routed call."""

    RUN_NOW = "run_now"
    ASK_PERSON = "ask_person"


TIER_NAMES: dict[str, pb.ConfirmTier] = {
    "run": pb.CONFIRM_TIER_RUN,
    "confirm": pb.CONFIRM_TIER_CONFIRM,
    "typed": pb.CONFIRM_TIER_TYPED,
}


def tier_name(tier: int) -> str:
    """`CONFIRM_TIER_TYPED` → `typed` ('' for none)."""
    return pb.ConfirmTier.Name(tier).removeprefix("CONFIRM_TIER_").lower() if tier else ""


@dataclass(frozen=True)
class PolicyFile:
    """The configured tiers: by tool (`filesystem.write_file`) and by server (`email`). A tool's entry
    wins over its server's; with neither, the tool's effects decide."""

    tools: Mapping[str, pb.ConfirmTier] = field(default_factory=dict)
    servers: Mapping[str, pb.ConfirmTier] = field(default_factory=dict)
    source: str = ""

    def configured(self, tool: str) -> pb.ConfirmTier | None:
        if tool in self.tools:
            return self.tools[tool]
        server = tool.split(".", 1)[0] if "." in tool else ""
        return self.servers.get(server)

    def tier(self, tool: str, declared: pb.ConfirmTier | None) -> pb.ConfirmTier:
        """The tier of a call of `tool` whose effects ask for `declared` (None: the tool is unknown)."""
        configured = self.configured(tool)
        if configured is not None:
            return configured
        return declared if declared else pb.CONFIRM_TIER_CONFIRM


def load_policy(path: Path | None) -> PolicyFile:
    """The policy file at `path` (None or '': none, the effects decide), checked; `ConfigurationError` saying
    exactly what is wrong and where."""
    if path is None or not str(path):
        return PolicyFile()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"confirmation policy {path}: no such file") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"confirmation policy {path}: cannot be read: {exc}") from exc
    return parse_policy(data, str(path))


def parse_policy(data: Any, source: str = "the policy") -> PolicyFile:
    """A policy from its YAML data: a mapping with `tools` and `servers`, each a mapping of name to
    `run`, `confirm` or `typed`; nothing else."""
    if data is None:
        return PolicyFile(source=source)
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}: expected a mapping with 'tools' and 'servers', got {type(data).__name__}")
    unknown = sorted(set(data) - {"tools", "servers"})
    if unknown:
        raise ConfigurationError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}; only 'tools' and 'servers'")
    sections: dict[str, dict[str, pb.ConfirmTier]] = {}
    for section in ("tools", "servers"):
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise ConfigurationError(f"{source}: '{section}' must map names to a tier, got {type(entries).__name__}")
        sections[section] = {}
        for name, tier in entries.items():
            if section == "tools" and (not isinstance(name, str) or "." not in name):
                raise ConfigurationError(
                    f"{source}: tools.{name}: a tool is named server.tool, e.g. filesystem.write_file"
                )
            if not isinstance(tier, str) or tier.strip().lower() not in TIER_NAMES:
                raise ConfigurationError(f"{source}: {section}.{name}: {tier!r} is not one of {', '.join(TIER_NAMES)}")
            sections[section][str(name)] = TIER_NAMES[tier.strip().lower()]
    return PolicyFile(sections["tools"], sections["servers"], source)


def decide(tool: pb.ToolInfo | None) -> Policy:
    """Read-only tools run at once; anything that changes something, or is unknown, waits for a person."""
    if tool is None or tool.confirmation_required or tool.destructive:
        return Policy.ASK_PERSON
    return Policy.RUN_NOW


# At this change intent (the filter's probe: how much a request reads like one for a change) a call
# of a tool that only reads waits for the person too: the request asked for something the tool will
# not do ("kill whatever is eating my CPU" lands on the process list), and the person should see the
# stand-in before it runs. Set on the dev halves: 4 of 110 requests for reads rose to it.
CHANGE_INTENT_HOLD = 0.5
HELD_FOR_INTENT = "the request asks for a change this tool does not make; it only reads, shown here as what can be done"


@dataclass(frozen=True)
class CallTier:
    """How a routed call is confirmed: its tier, whether a read is held for the person because the
    words ask for a change, and whether the person is asked at all (a standing grant covers a call that
    asks for a click)."""

    tier: pb.ConfirmTier
    held_for_intent: bool
    needs_person: bool
    grant_id: str


def call_tier(tool: pb.ToolInfo | None, shown: pb.Preview | None, change_intent: float, grant_id: str = "") -> CallTier:
    """The tier of a routed call: the tool host's preview's (effects, overwrites and the policy file);
    without one, a read runs and anything else, an unknown tool too, asks for a click. A read for a
    request that asks for a change waits for a person too."""
    if shown is not None and shown.tier:
        tier = shown.tier
    else:
        tier = pb.CONFIRM_TIER_RUN if decide(tool) is Policy.RUN_NOW else pb.CONFIRM_TIER_CONFIRM
    held = tier == pb.CONFIRM_TIER_RUN and decide(tool) is Policy.RUN_NOW and change_intent >= CHANGE_INTENT_HOLD
    granted = grant_id if tier == pb.CONFIRM_TIER_CONFIRM else ""
    return CallTier(tier, held, (tier != pb.CONFIRM_TIER_RUN or held) and not granted, granted)


# Step states after which a call has been dealt with (ran, or was settled without running).
SETTLED_STEP_STATUSES = frozenset(
    {pb.STEP_STATUS_SUCCEEDED, pb.STEP_STATUS_FAILED, pb.STEP_STATUS_SKIPPED, pb.STEP_STATUS_APPROVED}
)


def refused_paths(arguments_json: str, paths: PathPolicy) -> str:
    """Why a call may not be proposed to a person at all ('' if it may): a path it names is outside the
    allowed folders, a system location or a secret. The tool host would refuse it too; refusing here
    means no person is ever asked to approve it."""
    try:
        arguments = json.loads(arguments_json) if arguments_json else {}
    except json.JSONDecodeError:
        return ""
    if not isinstance(arguments, dict):
        return ""
    for raw in named_paths(arguments):
        if paths.classify(raw) is not PathVerdict.INSIDE:
            return paths.explain(raw)
    return ""


def judge_proposal(
    run: pb.Run, call: pb.ToolCall, needs_confirmation: bool, changes: frozenset[str], paths: PathPolicy
) -> tuple[pb.StepStatus, pb.EventKind, str]:
    """What becomes of a routed call: its step status, the event kind, and the reason to record ('' to
    keep the router's). In order: the router could not fill it; the planner holds it for a question to
    the person; it names a path no tool may touch; it repeats an earlier step with nothing changed since
    (a read reuses that step's result, anything else fails); a dry run; a change that waits for a
    person; a read that runs at once."""
    if call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION:
        return pb.STEP_STATUS_NEEDS_CLARIFICATION, pb.EVENT_KIND_NEEDS_CLARIFICATION, ""
    if call.held:  # the person is asked first; the call is shown, not put forward
        return pb.STEP_STATUS_NEEDS_CLARIFICATION, pb.EVENT_KIND_NEEDS_CLARIFICATION, call.held
    refusal = refused_paths(call.arguments_json, paths) if call.tool else ""
    if refusal:
        return pb.STEP_STATUS_REJECTED, pb.EVENT_KIND_REFUSED, f"Refused: {refusal}"
    repeat = repeated_call(run, call, changes) if call.tool else 0
    if repeat:
        earlier = step_record(run, repeat)
        if call.tool not in changes and earlier.status in (pb.STEP_STATUS_SUCCEEDED, pb.STEP_STATUS_SKIPPED):
            # The same read with nothing changed since has the same answer: the step takes the earlier
            # step's result instead of running the tool again ("read X, then show me X").
            return earlier.status, pb.EVENT_KIND_REUSED_RESULT, f"the same call as step {repeat}: its result is reused"
        reason = (
            f"{REPEATED_CALL}: step {repeat} already called {call.tool} with the same arguments and nothing has "
            "changed since, so it was not run again"
        )
        return pb.STEP_STATUS_FAILED, pb.EVENT_KIND_REPEATED_CALL, reason
    if call.dry_run:
        return pb.STEP_STATUS_SKIPPED, pb.EVENT_KIND_ROUTED_DRY_RUN, ""
    if needs_confirmation:
        return pb.STEP_STATUS_AWAITING_CONFIRMATION, pb.EVENT_KIND_AWAITING_CONFIRMATION, ""
    return pb.STEP_STATUS_APPROVED, pb.EVENT_KIND_APPROVED, ""


def repeated_call(run: pb.Run, call: pb.ToolCall, changes: frozenset[str]) -> int:
    """The earlier step of `run` that made exactly this call with nothing changed since (0 if none).

    `changes` are the tools that change things: after one of them ran, the same read may rightly be
    made again (list a folder, delete a file, list it again)."""
    wanted = _canonical(call.arguments_json)
    repeat = 0
    for record in sorted(run.steps, key=lambda r: r.number):
        if record.number >= call.step:
            break
        if record.status == pb.STEP_STATUS_SUCCEEDED and record.tool in changes:
            repeat = 0
        if (
            record.tool == call.tool
            and record.status in SETTLED_STEP_STATUSES
            and _canonical(record.arguments_json) == wanted
        ):
            repeat = record.number
    return repeat


def reused_result(run: pb.Run, step: pb.StepRecord) -> pb.StepRecord | None:
    """The earlier step whose result a step that repeats its read takes over (None if none).

    Only a step judged `reused_result` settles as succeeded without running, so a succeeded step that
    reaches this has its twin among the earlier steps."""
    if step.status != pb.STEP_STATUS_SUCCEEDED:
        return None
    wanted = _canonical(step.arguments_json)
    for record in sorted(run.steps, key=lambda r: r.number, reverse=True):
        if (
            record.number < step.number
            and record.tool == step.tool
            and record.status == pb.STEP_STATUS_SUCCEEDED
            and _canonical(record.arguments_json) == wanted
        ):
            return record
    return None


def _canonical(arguments_json: str) -> str:
    try:
        return json.dumps(json.loads(arguments_json or "{}"), sort_keys=True)
    except json.JSONDecodeError:
        return arguments_json
