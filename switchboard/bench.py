"""`sb bench`: run an accuracy suite through the running stack (dry run) and write a results file.

Suite formats are DESIGN.md's. Nothing is executed: the gateway records each routed call and skips it.
- `single`: each prompt is measured two ways: the routing decision over gRPC (`Filter.Rank` then
  `Router.Route` with the test's context: `accuracy`, `filter_hit_rate`, `param_key_accuracy`,
  `route_p50_ms`/`route_p95_ms`), and the whole turn through the gateway's HTTP API (`p50_ms`/`p95_ms`,
  and `turn_accuracy` over the tests without context, since a new session cannot see it).
- `turns`: each step of a chain is the next turn of one session through the gateway; a step passes
  when its turn routed (one of) its expected tools, a chain when every step passed.
- `chain`: the step prompts, each ending in a full stop, as one request the planner must decompose; a
  chain passes when its expected tools appear in order among the routed steps (extra steps allowed).
- `edge`: each prompt is one turn, scored by what was expected of it (see `edge_passed`).
- `args`: each prompt is one turn; its first step's tool and arguments are scored against the expected
  tool and values (see `argument_score`), and so is the router's own decision over gRPC.
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from switchboard.auth import blocking_channel
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

KINDS = ("single", "turns", "chain", "edge", "args", "compound")
# The person the suites speak of: "~" in an expected or a routed path means this folder.
SUITE_HOME = "/home/user"


@dataclass
class Endpoints:
    """Where the running stack is."""

    filter_addr: str
    router_addr: str
    api_url: str
    token: str
    internal_key: str
    k: int = 15


@dataclass
class Routed:
    tool: str
    arguments: dict[str, Any]
    candidates: list[str]
    clarify: bool
    route_ms: float


@dataclass
class Progress:
    """A one-line progress bar on stderr."""

    total: int
    label: str
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def step(self) -> None:
        self.done += 1
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0
        print(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}  eta {eta:4.0f}s",
            end="" if self.done < self.total else "\n",
            file=sys.stderr,
            flush=True,
        )


class Stack:
    """Calls into the running services."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.filter = pb_grpc.FilterStub(blocking_channel(endpoints.filter_addr, endpoints.internal_key))
        self.router = pb_grpc.RouterStub(blocking_channel(endpoints.router_addr, endpoints.internal_key))
        self.http = httpx.Client(
            base_url=endpoints.api_url, headers={"Authorization": f"Bearer {endpoints.token}"}, timeout=300
        )

    def route(self, prompt: str, context: str = "") -> Routed:
        start = time.perf_counter()
        ranked = self.filter.Rank(pb.RankRequest(text=prompt, k=self.endpoints.k), timeout=120)
        call = self.router.Route(
            pb.RouteRequest(text=prompt, candidates=ranked.candidates, context=context), timeout=120
        )
        elapsed = (time.perf_counter() - start) * 1000
        return Routed(
            tool=call.tool,
            arguments=json.loads(call.arguments_json or "{}"),
            candidates=[c.tool for c in ranked.candidates],
            clarify=call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION,
            route_ms=elapsed,
        )

    def turn(self, text: str, session_id: str = "") -> tuple[dict[str, Any], float]:
        """Submit a dry-run turn (in `session_id`, if given) and wait for it to end; returns the run
        (with its `session_id`) and its wall time."""
        start = time.perf_counter()
        reply = self.http.post("/v1/turns", json={"text": text, "dry_run": True, "session_id": session_id})
        reply.raise_for_status()
        run_id = reply.json()["run_id"]
        with self.http.stream("GET", f"/v1/runs/{run_id}/events") as events:
            for _ in events.iter_lines():
                pass
        run = self.http.get(f"/v1/runs/{run_id}").json()
        return run, (time.perf_counter() - start) * 1000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def rate(hits: Iterable[bool]) -> float:
    items = list(hits)
    return round(sum(items) / len(items), 4) if items else 0.0


def by_category(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[row.get("category", "")].append(row)
    return {name: {"n": len(items), key: rate(r[key] for r in items)} for name, items in sorted(groups.items())}


def run_single(stack: Stack, tests: list[dict[str, Any]], turns: bool = True) -> dict[str, Any]:
    progress = Progress(len(tests), "single")
    rows = []
    for test in tests:
        expected = set(test["expectedTools"])
        routed = stack.route(test["prompt"], "\n".join(test.get("context", [])))
        row: dict[str, Any] = {
            "id": test["id"],
            "category": test.get("category", ""),
            "prompt": test["prompt"],
            "context": bool(test.get("context")),
            "expected": sorted(expected),
            "routed": routed.tool,
            "arguments": routed.arguments,
            "needs_clarification": routed.clarify,
            "correct": routed.tool in expected,
            "retrieval_top": routed.candidates[0] if routed.candidates else "",
            "filter_hit": bool(expected & set(routed.candidates)),
            "route_ms": round(routed.route_ms, 1),
        }
        keys = test.get("expectedParamKeys", {}).get(routed.tool)
        if "expectedParamKeys" in test:
            row["param_keys_correct"] = keys is not None and set(keys) <= set(routed.arguments)
        if turns:
            run, elapsed = stack.turn(test["prompt"])
            row["turn_tool"] = run["steps"][0]["tool"] if run["steps"] else ""
            row["turn_correct"] = row["turn_tool"] in expected
            row["turn_ms"] = round(elapsed, 1)
        rows.append(row)
        progress.step()
    route_ms: list[float] = [r["route_ms"] for r in rows]
    turn_ms: list[float] = [r["turn_ms"] for r in rows if "turn_ms" in r]
    summary = {
        "tests": len(rows),
        "accuracy": rate(r["correct"] for r in rows),
        "wrong_tool_rate": rate(bool(r["routed"]) and not r["correct"] for r in rows),
        "no_tool_rate": rate(not r["routed"] for r in rows),
        "filter_hit_rate": rate(r["filter_hit"] for r in rows),
        "retrieval_accuracy": rate(r["retrieval_top"] in r["expected"] for r in rows),
        "param_key_accuracy": rate(r["param_keys_correct"] for r in rows if "param_keys_correct" in r),
        "route_p50_ms": percentile(route_ms, 0.5),
        "route_p95_ms": percentile(route_ms, 0.95),
        "p50_ms": percentile(turn_ms, 0.5),
        "p95_ms": percentile(turn_ms, 0.95),
        "categories": by_category(rows, "correct"),
    }
    if turn_ms:
        # A turn starts a new session, so it cannot see a test's context: only tests without one count.
        summary["turn_accuracy"] = rate(r["turn_correct"] for r in rows if "turn_correct" in r and not r["context"])
    return {"summary": summary, "results": rows}


def longest_in_order(expected: list[set[str]], routed: list[str]) -> int:
    """The longest in-order match of expected steps by routed tools (a longest common subsequence;
    extra routed steps and missed expected ones are allowed)."""
    best = [0] * (len(routed) + 1)
    for step in expected:
        previous_diagonal = 0
        for j, tool in enumerate(routed, start=1):
            above = best[j]
            best[j] = previous_diagonal + 1 if tool in step else max(best[j], best[j - 1])
            previous_diagonal = above
    return best[-1]


def run_chains(stack: Stack, chains: list[dict[str, Any]], as_turns: bool) -> dict[str, Any]:
    progress = Progress(len(chains), "turns" if as_turns else "chain")
    rows = []
    for chain in chains:
        expected = [set(step["expectedTools"]) for step in chain["steps"]]
        prompts = [step.get("prompt", "").strip() for step in chain["steps"]]
        if as_turns and not all(prompts):
            raise ValueError(f"{chain['id']}: steps without prompts cannot be run as turns (a compound case?)")
        if as_turns:
            routed: list[str] = []
            times: list[float] = []
            session = ""
            matched = 0
            for prompt, wanted in zip(prompts, expected, strict=True):
                run, turn_ms = stack.turn(prompt, session)
                session = run["session_id"]
                tools = [step["tool"] for step in run["steps"] if step["tool"]]
                hit = next((tool for tool in tools if tool in wanted), None)
                routed.append(hit or (tools[0] if tools else f"({run['status']})"))
                times.append(turn_ms)
                matched += hit is not None
            passed = matched == len(expected)
        else:
            # A compound case is written as one request; a chain's steps are joined into one.
            text = chain.get("prompt") or " ".join(p if p.endswith((".", "?", "!")) else p + "." for p in prompts)
            run, turn_ms = stack.turn(text)
            routed = [step["tool"] for step in run["steps"] if step["tool"]]
            times = [turn_ms]
            matched = longest_in_order(expected, routed)
            passed = matched == len(expected)
        rows.append(
            {
                "id": chain["id"],
                "category": chain.get("category", ""),
                "expected": [sorted(s) for s in expected],
                "routed": routed,
                "passed": passed,
                "steps_matched": matched,
                "steps": len(expected),
                "ms": round(sum(times), 1),
            }
        )
        progress.step()
    summary = {
        "tests": len(rows),
        "chain_completion": rate(r["passed"] for r in rows),
        "step_completion": round(sum(r["steps_matched"] for r in rows) / max(1, sum(r["steps"] for r in rows)), 4),
        "p50_ms": percentile([r["ms"] for r in rows], 0.5),
        "p95_ms": percentile([r["ms"] for r in rows], 0.95),
        "categories": by_category(rows, "passed"),
    }
    return {"summary": summary, "results": rows}


# Step states in which a call was put forward to run (or would have been, in a dry run).
PROPOSED_STATES = {"skipped", "awaiting_confirmation", "approved", "succeeded", "failed"}


def observed_behaviour(run: dict[str, Any]) -> str:
    """What a dry-run turn did, in the edge suite's terms."""
    if run["status"] == "needs_clarification":
        return "clarify"
    if run["status"] == "refused":
        return "refuse"
    proposed = [s for s in run["steps"] if s["tool"] and s["status"] in PROPOSED_STATES]
    if any(s["confirmation_required"] for s in proposed):
        return "suggest_alternative"
    return "fallback" if proposed else "clarify"


def edge_passed(test: dict[str, Any], run: dict[str, Any], strict: bool = False) -> bool:
    """Whether a turn did what the edge case expects, by the issue's scoring:
    clarify → the run ended needing clarification; refuse → refused, with no call put forward to run;
    fallback → (one of) the expected tools was put forward, so its own error can say what is wrong;
    suggest_alternative → nothing would run without a person's confirmation (every call put forward
    waits for one; a run that asks back or refuses puts none forward).
    With `strict`, suggest_alternative also needs a call that changes something to have been put
    forward and held for the person, not merely nothing run."""
    expected = test["expectedBehavior"]
    proposed = [s for s in run["steps"] if s["tool"] and s["status"] in PROPOSED_STATES]
    if expected == "clarify":
        return run["status"] == "needs_clarification"
    if expected == "refuse":
        return run["status"] == "refused" and not proposed
    if expected == "suggest_alternative":
        unasked = any(not s["confirmation_required"] for s in proposed)
        if strict:
            held = any(s["confirmation_required"] for s in proposed)
            return held and not unasked and run["status"] not in ("refused", "needs_clarification")
        return not unasked
    if expected == "fallback":
        wanted = set(test.get("expectedTools") or [])
        fell_back = bool(proposed) and (not wanted or any(s["tool"] in wanted for s in proposed))
        return fell_back and run["status"] not in ("refused", "needs_clarification")
    raise ValueError(f"{test['id']}: unknown expectedBehavior {expected!r}")


def run_edge(stack: Stack, tests: list[dict[str, Any]]) -> dict[str, Any]:
    progress = Progress(len(tests), "edge")
    rows = []
    for test in tests:
        run, turn_ms = stack.turn(test["prompt"])
        behaviour = observed_behaviour(run)
        rows.append(
            {
                "id": test["id"],
                "category": test.get("category", ""),
                "prompt": test["prompt"],
                "expected": test["expectedBehavior"],
                "observed": behaviour,
                "routed": [s["tool"] for s in run["steps"] if s["tool"]],
                "status": run["status"],
                "answer": run["answer"],
                "correct": edge_passed(test, run),
                "strict_correct": edge_passed(test, run, strict=True),
                "turn_ms": round(turn_ms, 1),
            }
        )
        progress.step()
    summary = {
        "tests": len(rows),
        "outcome_accuracy": rate(r["correct"] for r in rows),
        "strict_outcome_accuracy": rate(r["strict_correct"] for r in rows),
        "p50_ms": percentile([r["turn_ms"] for r in rows], 0.5),
        "p95_ms": percentile([r["turn_ms"] for r in rows], 0.95),
        "categories": by_category(rows, "correct"),
    }
    return {"summary": summary, "results": rows}


def comparable(value: Any, home: str = SUITE_HOME) -> Any:
    """A value as argument scoring compares it: strings lower-cased and stripped, `~` expanded, a
    trailing slash dropped; lists element by element."""
    if isinstance(value, list):
        return [comparable(v, home) for v in value]
    if isinstance(value, dict):
        return {str(k).lower(): comparable(v, home) for k, v in value.items()}
    if isinstance(value, str):
        text = value.strip()
        if text == "~" or text.startswith("~/"):
            text = home + text[1:]
        if len(text) > 1:
            text = text.rstrip("/")
        return text.lower()
    return value


def value_matches(expected: Any, given: Any, home: str = SUITE_HOME) -> bool:
    """Whether `given` is the value `expected` asks for: strings when one contains the other (after
    `comparable`), numbers by value, booleans exactly, lists when every expected item is matched,
    objects when every expected key is there with a matching value."""
    want, got = comparable(expected, home), comparable(given, home)
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and value_matches(v, got[k], home) for k, v in want.items())
    if isinstance(want, list):
        items = got if isinstance(got, list) else [got]
        return all(any(value_matches(w, g, home) for g in items) for w in want)
    if isinstance(want, str):
        if isinstance(got, list) and len(got) == 1:
            got = got[0]
        if not isinstance(got, str):
            got = json.dumps(got)
        return bool(want) and bool(got) and (want in got or got in want)
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if isinstance(want, int | float) and isinstance(got, int | float | str):
        try:
            return float(got) == float(want)
        except ValueError:
            return False
    return bool(want == got)


def argument_score(test: dict[str, Any], tool: str, arguments: dict[str, Any]) -> dict[str, float]:
    """DESIGN.md's argument-value score of one call: 0.3 × right tool + 0.3 × share of expected keys
    present + 0.3 × share of the present expected keys with the right value + 0.1 × (1 − 0.25 × keys
    not expected, floored at 0)."""
    expected: dict[str, Any] = test["expectedParams"]
    present = [k for k in expected if k in arguments]
    right = [k for k in present if value_matches(expected[k], arguments[k])]
    extra = [k for k in arguments if k not in expected]
    parts = {
        "tool": float(tool == test["expectedTool"]),
        "keys": len(present) / len(expected) if expected else 1.0,
        "values": len(right) / len(present) if present else 0.0,
        "no_extra": max(0.0, 1 - 0.25 * len(extra)),
    }
    parts["score"] = round(
        0.3 * parts["tool"] + 0.3 * parts["keys"] + 0.3 * parts["values"] + 0.1 * parts["no_extra"], 4
    )
    return parts


def run_args(stack: Stack, tests: list[dict[str, Any]]) -> dict[str, Any]:
    progress = Progress(len(tests), "args")
    rows = []
    for test in tests:
        routed = stack.route(test["prompt"])
        run, turn_ms = stack.turn(test["prompt"])
        first = next((s for s in run["steps"] if s["tool"]), None)
        turn_tool = first["tool"] if first else ""
        turn_arguments = first["arguments"] if first else {}
        rows.append(
            {
                "id": test["id"],
                "category": test.get("category", ""),
                "prompt": test["prompt"],
                "expected": test["expectedTool"],
                "expected_params": test["expectedParams"],
                "routed": routed.tool,
                "arguments": routed.arguments,
                "route": argument_score(test, routed.tool, routed.arguments),
                "turn_tool": turn_tool,
                "turn_arguments": turn_arguments,
                "turn_status": run["status"],
                "turn": argument_score(test, turn_tool, turn_arguments),
                "route_ms": round(routed.route_ms, 1),
                "turn_ms": round(turn_ms, 1),
            }
        )
        progress.step()

    def mean(part: str, where: str) -> float:
        return round(sum(r[where][part] for r in rows) / max(1, len(rows)), 4)

    summary = {
        "tests": len(rows),
        "composite": mean("score", "turn"),
        "tool_accuracy": mean("tool", "turn"),
        "key_recall": mean("keys", "turn"),
        "value_accuracy": mean("values", "turn"),
        "no_extra_keys": mean("no_extra", "turn"),
        "route_composite": mean("score", "route"),
        "route_p50_ms": percentile([r["route_ms"] for r in rows], 0.5),
        "route_p95_ms": percentile([r["route_ms"] for r in rows], 0.95),
        "p50_ms": percentile([r["turn_ms"] for r in rows], 0.5),
        "p95_ms": percentile([r["turn_ms"] for r in rows], 0.95),
    }
    return {"summary": summary, "results": rows}


def run_suite(kind: str, suite: Path, out: Path, endpoints: Endpoints, turns: bool = True) -> dict[str, Any]:
    """Run one suite and write `{"kind", "suite", "summary", "results"}` to `out`."""
    tests = json.loads(suite.read_text(encoding="utf-8"))
    if not isinstance(tests, list) or not tests:
        raise ValueError(f"{suite} is not a non-empty JSON list of tests")
    stack = Stack(endpoints)
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "single": lambda: run_single(stack, tests, turns),
        "turns": lambda: run_chains(stack, tests, as_turns=True),
        "chain": lambda: run_chains(stack, tests, as_turns=False),
        "compound": lambda: run_chains(stack, tests, as_turns=False),
        "edge": lambda: run_edge(stack, tests),
        "args": lambda: run_args(stack, tests),
    }
    result = {"kind": kind, "suite": str(suite), "k": endpoints.k, **runners[kind]()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return result
