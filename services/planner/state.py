"""The planner's records of a run: its plan, the steps it emitted and what came of them.

Plain data, serialisable to JSON so the worker can keep a run's state in Redis between results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.planner.context import SessionMemory


class StepState(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    NEEDS_CLARIFICATION = "needs_clarification"


class RunOutcome(StrEnum):
    ANSWERED = "answered"
    NEEDS_CLARIFICATION = "needs_clarification"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True)
class PlannedStep:
    """One step of a plan: what it should achieve, the server expected to do it."""

    number: int
    intent: str
    server: str = ""
    for_each: bool = False
    refers_back: bool = False


@dataclass(frozen=True)
class StepOutcome:
    """A step's result as the planner sees it."""

    number: int
    tool: str
    state: StepState
    arguments: dict[str, Any] = field(default_factory=dict)
    content: Any = None
    error: str = ""
    # For a failed step: its kind (a FailureMode's lower-case name, '' if none was given) and the
    # tool's correction ({"parameter", "problem", "suggested_value", "suggested_tool"}, any may be absent).
    failure: str = ""
    correction: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    """The run has nothing more to do; how it ended (the answer is composed from the records), and how
    many steps the step limit left unrun (the answer says so)."""

    outcome: RunOutcome
    cut_short: int = 0


@dataclass(frozen=True)
class Finish:
    """How a run ended and the whole answer."""

    outcome: RunOutcome
    answer: str


@dataclass
class StepOrder:
    """A step as emitted: the run's step number, what it is for, and what it is handed."""

    number: int
    plan_number: int
    intent: str
    server: str = ""
    item: str = ""  # the item a per-item step is about
    attempt: int = 1
    context: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunState:
    """Everything the planner knows about a run in progress (kept in Redis between results)."""

    text: str
    session_id: str
    dry_run: bool
    plan: list[PlannedStep]
    history: SessionMemory = field(default_factory=SessionMemory)
    cursor: int = 0  # index of the next plan step to start
    pending: list[StepOrder] = field(default_factory=list)  # per-item steps not yet emitted
    orders: list[StepOrder] = field(default_factory=list)  # emitted steps, in order
    outcomes: dict[int, StepOutcome] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the answer must also say (skips, the limit)
    streamed: int = 0  # answer lines already sent to the client
    finished: dict[str, str] = field(default_factory=dict)  # the outcome and answer, once there is one
    # Why the policy asks the person first; the run's steps are then routed and shown, never run.
    held: str = ""
    # When the person asked (local ISO time): what "tomorrow" in any of the run's steps is relative to.
    asked_at: str = field(default_factory=lambda: datetime.now().replace(microsecond=0).isoformat())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = self.history.to_json()
        data["outcomes"] = {str(k): {**asdict(v), "state": v.state.value} for k, v in self.outcomes.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        return cls(
            text=data["text"],
            session_id=data["session_id"],
            dry_run=data["dry_run"],
            plan=[PlannedStep(**s) for s in data["plan"]],
            history=SessionMemory.from_json(data.get("history")),
            cursor=data["cursor"],
            pending=[StepOrder(**o) for o in data["pending"]],
            orders=[StepOrder(**o) for o in data["orders"]],
            outcomes={
                int(k): StepOutcome(**{**v, "state": StepState(v["state"])}) for k, v in data["outcomes"].items()
            },
            notes=list(data["notes"]),
            streamed=data.get("streamed", 0),
            finished=dict(data.get("finished", {})),
            held=data.get("held", ""),
            asked_at=data.get("asked_at") or datetime.now().replace(microsecond=0).isoformat(),
        )

    def order(self, number: int) -> StepOrder | None:
        return next((o for o in self.orders if o.number == number), None)
