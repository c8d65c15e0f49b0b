"""`sb`: Switchboard from the terminal, through the gateway's HTTP API.

Commands: ask, runs, show, confirm, fill, undo, grants, revoke, audit, plan, tools, bench, status, top.
Errors print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import grpc
import httpx
import redis
from pydantic import Field

from switchboard.bench import KINDS
from switchboard.settings import CommonSettings
from switchboard.top import Endpoint, Scrape, build_view, endpoint_from_heartbeat, parse_scrape, render

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AWAITING = 3
FINAL = {"answered", "needs_clarification", "refused", "failed"}


class CliSettings(CommonSettings):
    gateway_url: str = Field("", description="The gateway's HTTP API; empty: this machine's, on the HTTP port.")
    token: str = Field("", description="Bearer token; empty: read it from the state directory.")

    @property
    def api_url(self) -> str:
        return self.gateway_url or f"http://127.0.0.1:{self.http_port}"


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    print(f"sb: {message}", file=sys.stderr)
    sys.exit(code)


class Client:
    """The gateway's HTTP API, with errors turned into one-line failures."""

    def __init__(self, settings: CliSettings) -> None:
        token = settings.token
        if not token:
            try:
                token = settings.token_path.read_text().strip()
            except FileNotFoundError:
                fail(f"no API token at {settings.token_path}; start the stack (`make start`) or set SWITCHBOARD_TOKEN")
        self.base = settings.api_url.rstrip("/")
        self.token = token
        self.http = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the gateway at {self.base} ({exc.__class__.__name__}); is the stack running?")
        if response.status_code >= 400:
            try:
                detail = response.json().get("error") or response.json().get("detail")
            except ValueError:
                detail = response.text
            fail(f"{response.status_code}: {detail}")
        return response.json()

    def events(self, run_id: str) -> Any:
        """Yield a run's events (dicts) as they happen, until it finishes."""
        try:
            with self.http.stream("GET", f"/v1/runs/{run_id}/events", timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    fail(f"{response.status_code}: {response.text}")
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[6:])
        except httpx.HTTPError as exc:
            fail(f"lost the event stream of run {run_id} ({exc.__class__.__name__})")


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def describe_run(run: dict[str, Any], with_answer: bool = True) -> str:
    lines = [f"run {run['run_id']}  [{run['status']}]  {run['text']}"]
    for step in run["steps"]:
        args = json.dumps(step["arguments"], ensure_ascii=False)
        lines.append(f"  step {step['number']}: {step['tool'] or '-'} {args}  [{step['status']}]")
        preview = step.get("preview")
        if preview and step["status"] == "awaiting_confirmation":
            lines.append(f"    will: {preview['text']}")
            if preview["tier"] == "typed":
                lines.append(
                    f"    to allow it, type its name: sb confirm {run['run_id']} {step['number']} --typed TARGET"
                )
        if step.get("missing") and step["status"] == "needs_clarification":
            wanted = " ".join(f"{name}=VALUE" for name in step["missing"])
            lines.append(
                f"    waits for: {', '.join(step['missing'])}  (sb fill {run['run_id']} {step['number']} {wanted})"
            )
        if step["error"]:
            lines.append(f"    {step['error']}")
    if run["answer"] and with_answer:
        lines.append("")
        lines.append(run["answer"])
    return "\n".join(lines)


def follow(client: Client, run_id: str, as_json: bool, confirmed_step: int = 0) -> int:
    """Follow a run until it ends or a step waits for a person: progress on stderr, the answer on
    stdout as its lines arrive, then the run's steps. Returns the exit code."""
    awaiting = None
    streamed = False
    for event in client.events(run_id):
        if event["kind"] == "answer":
            if not as_json:
                print(event["message"], end="", flush=True)
                streamed = True
            continue
        if not as_json or sys.stderr.isatty():
            detail = f" {event['message']}" if event["message"] and event["kind"] != "finished" else ""
            step = f" step {event['step']}" if event["step"] else ""
            print(f"… {event['kind']}{step}{detail}", file=sys.stderr, flush=True)
        if event["kind"] == "awaiting_confirmation" and event["step"] > confirmed_step:
            awaiting = event["step"]
            break
    run = client.request("GET", f"/v1/runs/{run_id}")
    if as_json:
        print_json(run)
    else:
        print(("\n" if streamed else "") + describe_run(run, with_answer=not streamed))
    if awaiting is not None and run["status"] not in FINAL:
        waiting: dict[str, Any] = next((s for s in run["steps"] if s["number"] == awaiting), {})
        typed = " --typed NAME" if (waiting.get("preview") or {}).get("tier") == "typed" else ""
        print(f"sb: step {awaiting} waits for you: sb confirm {run_id} {awaiting}{typed} [--reject]", file=sys.stderr)
        return EXIT_AWAITING
    return EXIT_FAILED if run["status"] == "failed" else 0


def cmd_ask(client: Client, args: argparse.Namespace) -> int:
    submitted = client.request(
        "POST", "/v1/turns", json={"text": args.text, "session_id": args.session or "", "dry_run": args.dry_run}
    )
    run_id = submitted["run_id"]
    if not args.wait:
        print_json(submitted) if args.json else print(run_id)
        return 0
    return follow(client, run_id, args.json)


def cmd_plan(settings: CliSettings, args: argparse.Namespace) -> int:
    """Show the plan a request would get, without running anything."""
    from switchboard.auth import blocking_channel
    from switchboard.v1 import switchboard_pb2 as pb
    from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

    stub = pb_grpc.PlannerStub(blocking_channel(settings.planner_addr, settings.internal_key()))
    try:
        plan = stub.Plan(pb.PlanRequest(text=args.text), timeout=120)
    except grpc.RpcError as exc:
        fail(f"the planner did not answer at {settings.planner_addr}: {exc.code().name} {exc.details()}")  # type: ignore[attr-defined]
    steps = [{"number": s.number, "intent": s.intent, "server": s.server, "for_each": s.for_each} for s in plan.steps]
    if args.json:
        print_json({"steps": steps, "outcome": plan.outcome or "planned", "reason": plan.reason})
    elif plan.outcome:
        print(f"{plan.outcome}: {plan.reason}")
    else:
        for step in steps:
            each = "  (for each item)" if step["for_each"] else ""
            print(f"{step['number']}. [{step['server'] or '?'}] {step['intent']}{each}")
    return EXIT_FAILED if plan.outcome == "refused" else 0


def cmd_runs(client: Client, args: argparse.Namespace) -> int:
    runs = client.request("GET", "/v1/runs", params={"limit": args.limit, "session_id": args.session or ""})["runs"]
    if args.json:
        print_json(runs)
    for run in [] if args.json else runs:
        print(f"{run['run_id']}  {run['status']:<22} {run['text'][:70]}")
    return 0


def cmd_show(client: Client, args: argparse.Namespace) -> int:
    run = client.request("GET", f"/v1/runs/{args.run}")
    print_json(run) if args.json else print(describe_run(run))
    return 0


def cmd_confirm(client: Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"approve": not args.reject, "reason": args.reason, "scope": args.scope, "typed": args.typed}
    if args.arguments:
        try:
            body["arguments"] = json.loads(args.arguments)
        except json.JSONDecodeError as exc:
            fail(f"--arguments is not JSON: {exc}", EXIT_USAGE)
    run = client.request("POST", f"/v1/runs/{args.run}/steps/{args.step}/confirm", json=body)
    if args.wait:
        return follow(client, args.run, args.json, confirmed_step=args.step)
    print_json(run) if args.json else print(describe_run(run))
    return 0


def parse_values(pairs: list[str]) -> dict[str, Any]:
    """`name=value` pairs; a value that reads as JSON (a number, true, a list) is taken as that."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            fail(f"{pair!r} is not name=value", EXIT_USAGE)
        try:
            values[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[name.strip()] = raw
    return values


def cmd_fill(client: Client, args: argparse.Namespace) -> int:
    run = client.request(
        "POST", f"/v1/runs/{args.run}/steps/{args.step}/fill", json={"values": parse_values(args.values)}
    )
    if args.wait:
        return follow(client, args.run, args.json)
    print_json(run) if args.json else print(describe_run(run))
    return 0


def cmd_grants(client: Client, args: argparse.Namespace) -> int:
    grants = client.request("GET", "/v1/grants")["grants"]
    if args.json:
        print_json(grants)
        return 0
    for grant in grants:
        where = f"session {grant['session_id']}" if grant["scope"] == "session" else "always"
        print(f"{grant['grant_id']}  {grant['tool']:<32} {where}  (from run {grant['run_id']} step {grant['step']})")
    if not grants:
        print("no standing grants")
    return 0


def cmd_revoke(client: Client, args: argparse.Namespace) -> int:
    client.request("DELETE", f"/v1/grants/{args.grant}")
    print(f"revoked {args.grant}")
    return 0


def cmd_audit(client: Client, args: argparse.Namespace) -> int:
    params = {"session_id": args.session or "", "run_id": args.run or "", "limit": args.limit}
    entries = client.request("GET", "/v1/audit", params=params)["entries"]
    if args.json:
        print_json(entries)
        return 0
    for entry in entries:
        where = f"{entry['run_id'][:12]} #{entry['step']}" if entry["run_id"] else "-"
        error = f"  {entry['error']}" if entry["error"] else ""
        print(f"{entry['at']}  {where:<16} {entry['tool']:<30} {entry['confirmation']:<18} {entry['status']}{error}")
    return 0


def cmd_undo(client: Client, args: argparse.Namespace) -> int:
    run = client.request("POST", f"/v1/runs/{args.run}/steps/{args.step}/undo")
    print_json(run) if args.json else print(describe_run(run))
    return 0


def cmd_bench(settings: CliSettings, args: argparse.Namespace) -> int:
    from switchboard.bench import Endpoints, run_suite

    client = Client(settings)  # fails with one clear line when there is no token or gateway
    endpoints = Endpoints(
        settings.filter_addr, settings.router_addr, client.base, client.token, settings.internal_key(), args.k
    )
    try:
        result = run_suite(args.kind, args.suite, args.out, endpoints, turns=not args.no_turns)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    except grpc.RpcError as exc:
        fail(f"the stack did not answer: {exc.code().name} {exc.details()}")  # type: ignore[attr-defined]
    summary = {k: v for k, v in result["summary"].items() if k != "categories"}
    print(json.dumps(summary, indent=2))
    print(f"results written to {args.out}", file=sys.stderr)
    return 0


def cmd_tools(client: Client, args: argparse.Namespace) -> int:
    tools = client.request("GET", "/v1/tools")["tools"]
    if args.json:
        print_json(tools)
        return 0
    for tool in tools:
        flags = "".join(
            flag
            for flag, on in (
                ("C", tool["confirmation_required"]),
                ("U", tool["undo_supported"]),
                ("D", tool["destructive"]),
            )
            if on
        )
        print(
            f"{tool['name']:<34} {flags:<3} {tool['description'].splitlines()[0][:80] if tool['description'] else ''}"
        )
    return 0


def stack_redis_url(settings: CliSettings) -> str:
    """The Redis the services use: `SWITCHBOARD_REDIS_URL` if set, else the one the stack on this machine
    wrote into the state directory when it started, else the default."""
    from switchboard.stack import REDIS_URL_FILE

    url = os.environ.get("SWITCHBOARD_REDIS_URL", "")
    if not url:
        try:
            url = (settings.state_dir / REDIS_URL_FILE).read_text().strip()
        except FileNotFoundError:
            url = settings.redis_url
    return url


def cmd_status(settings: CliSettings, args: argparse.Namespace) -> int:
    from switchboard import keys
    from switchboard.status import collect_status

    status = collect_status(stack_redis_url(settings), settings.redis_password())
    if args.json:
        print_json(status)
    else:
        redis_state = status["redis"].get("error") or "ok"
        print(f"redis {status['redis']['url']}: {redis_state}")
        for name, length in status["redis"]["streams"].items():
            print(f"  {name:<14} {length}")
        dead = status["dead_letters"]
        if dead["length"]:
            print(f"  {keys.DEAD_LETTERS:<14} {dead['length']}  (given up on; the newest first)")
            for letter in dead["newest"]:
                where = f"{letter['stream']} / {letter['group']}, run {letter['run_id'] or '-'}"
                print(f"    {letter['id']}  {where}: {letter['error']}")
        redis_restarts = status["restarts"].get("redis", {}).get("restarts", 0)
        if redis_restarts:
            print(f"redis restarted by the stack's supervisor: {redis_restarts} times")
        for service in status["services"]:
            health = "healthy" if service["healthy"] else "NOT HEALTHY"
            name = service["name"] if not service["replica"] else f"{service['name']}#{service['replica']}"
            restarts = f"  restarts {service['restarts']}" if service["restarts"] else ""
            print(f"{name:<10} pid {service['pid']:<8} {service['grpc']:<22} {health}{restarts}")
        if not status["services"]:
            print("no services running")
    return 0 if "error" not in status["redis"] else EXIT_FAILED


# How long one service's /metrics may take to answer before it is shown as not answering.
SCRAPE_TIMEOUT_SECONDS = 2.0


def metrics_endpoints(client: redis.Redis) -> list[Endpoint]:
    """The metrics endpoint of every service replica with a live heartbeat record (`RedisError` when
    Redis does not answer)."""
    import socket

    from switchboard.status import heartbeat_records

    here = socket.gethostname()
    endpoints = [endpoint_from_heartbeat(record, here) for record in heartbeat_records(client)]
    found = [endpoint for endpoint in endpoints if endpoint is not None]
    return sorted(set(found), key=lambda e: (e.service, e.replica, e.url))


def scrape_all(http: httpx.Client, endpoints: list[Endpoint]) -> dict[Endpoint, Scrape | str]:
    """Each endpoint's metrics, or why it gave none."""
    scrapes: dict[Endpoint, Scrape | str] = {}
    for endpoint in endpoints:
        try:
            response = http.get(endpoint.url)
            response.raise_for_status()
            scrapes[endpoint] = parse_scrape(response.text)
        except httpx.HTTPStatusError as exc:
            scrapes[endpoint] = f"HTTP {exc.response.status_code}"
        except httpx.HTTPError as exc:
            scrapes[endpoint] = exc.__class__.__name__
        except ValueError as exc:  # the parser's complaint about text that is not the exposition format
            scrapes[endpoint] = f"unreadable metrics: {exc}"
    return scrapes


def cmd_top(settings: CliSettings, args: argparse.Namespace) -> int:
    """Every `--interval` seconds, what each stage did since the last refresh (latency quantiles,
    throughput, errors), the streams' backlog and the stack's rates, from every running service's
    metrics endpoint. Redrawn in place on a terminal; frames one after another otherwise."""
    import time
    from datetime import datetime

    from switchboard.status import redacted

    if args.interval <= 0:
        fail("--interval must be more than 0 seconds", EXIT_USAGE)
    if args.iterations is not None and args.iterations < 1:
        fail("--iterations must be at least 1", EXIT_USAGE)
    url = stack_redis_url(settings)
    password = settings.redis_password()
    client = redis.Redis.from_url(
        url, socket_timeout=SCRAPE_TIMEOUT_SECONDS, **({"password": password} if password else {})
    )
    http = httpx.Client(timeout=min(SCRAPE_TIMEOUT_SECONDS, args.interval))
    try:
        try:
            endpoints = metrics_endpoints(client)
        except redis.RedisError as exc:
            fail(f"cannot reach Redis at {redacted(url)} ({exc.__class__.__name__}); is the stack running?")
        if not endpoints:
            fail(f"no service is running (no heartbeat in Redis at {redacted(url)}); start the stack (`make start`)")
        before = scrape_all(http, endpoints)
        then = time.monotonic()
        redraw = sys.stdout.isatty()
        refreshes = 0
        while args.iterations is None or refreshes < args.iterations:
            # Paced from the first scrape, so that the refreshes keep their rhythm however long a scrape takes.
            time.sleep(max(0.0, then + args.interval - time.monotonic()))
            note = ""
            try:
                endpoints = metrics_endpoints(client) or endpoints
            except redis.RedisError as exc:
                note = f"  (Redis does not answer: {exc.__class__.__name__}; the services found before)"
            now = time.monotonic()
            after = scrape_all(http, endpoints)
            answered = {e: s for e, s in before.items() if not isinstance(s, str)}
            view = build_view(answered, after, now - then)
            title = (
                f"sb top  {datetime.now().astimezone():%Y-%m-%d %H:%M:%S}  the last {now - then:.1f} s, "
                f"{len(endpoints)} service processes{note}"
            )
            if redraw:
                sys.stdout.write("\x1b[H\x1b[2J")  # cursor home, clear the screen
            elif refreshes:
                print()
            print(render(view, title), flush=True)
            before, then = after, now
            refreshes += 1
    except KeyboardInterrupt:
        pass
    finally:
        http.close()
        client.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sb", description="Ask Switchboard for things; confirm what it may change.")
    sub = parser.add_subparsers(dest="command", required=True)

    ask = sub.add_parser("ask", help="submit a request")
    ask.add_argument("text")
    ask.add_argument("--wait", action="store_true", help="follow the run until it ends or needs you")
    ask.add_argument("--json", action="store_true", help="print the run as JSON")
    ask.add_argument("--dry-run", action="store_true", help="plan and route, execute nothing")
    ask.add_argument("--session", help="continue this session")

    runs = sub.add_parser("runs", help="list recent runs")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--session", help="only this session's runs")
    runs.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="show one run")
    show.add_argument("run")
    show.add_argument("--json", action="store_true")

    confirm = sub.add_parser("confirm", help="allow (or --reject) a step that waits for you")
    confirm.add_argument("run")
    confirm.add_argument("step", type=int)
    confirm.add_argument("--reject", action="store_true")
    confirm.add_argument("--reason", default="", help="why it is rejected (kept with the run)")
    confirm.add_argument(
        "--scope",
        choices=["once", "session", "always"],
        default="once",
        help="also allow this tool for the rest of the session, or always, without asking",
    )
    confirm.add_argument("--typed", default="", help="the name a delete, send or overwrite asks you to type")
    confirm.add_argument("--arguments", default="", help="run it with these arguments instead (a JSON object)")
    confirm.add_argument("--json", action="store_true")
    confirm.add_argument("--wait", action="store_true", help="then follow the run until it ends or needs you again")

    fill = sub.add_parser("fill", help="give the values a step waits for (name=value …)")
    fill.add_argument("run")
    fill.add_argument("step", type=int)
    fill.add_argument("values", nargs="+", metavar="NAME=VALUE")
    fill.add_argument("--json", action="store_true")
    fill.add_argument("--wait", action="store_true", help="then follow the run")

    grants = sub.add_parser("grants", help="list the standing grants (tools allowed without asking)")
    grants.add_argument("--json", action="store_true")
    revoke = sub.add_parser("revoke", help="revoke a standing grant")
    revoke.add_argument("grant")

    audit = sub.add_parser("audit", help="the audit log, newest first")
    audit.add_argument("--session", help="only this session's entries")
    audit.add_argument("--run", help="only this run's entries")
    audit.add_argument("--limit", type=int, default=30)
    audit.add_argument("--json", action="store_true")

    plan = sub.add_parser("plan", help="show the steps a request would be planned into; nothing runs")
    plan.add_argument("text")
    plan.add_argument("--json", action="store_true")

    undo = sub.add_parser("undo", help="undo what a step changed (restores from the trash, moves back, …)")
    undo.add_argument("run")
    undo.add_argument("step", type=int)
    undo.add_argument("--json", action="store_true")

    tools = sub.add_parser("tools", help="list the tools")
    tools.add_argument("--json", action="store_true")

    bench = sub.add_parser("bench", help="run an accuracy suite through the running stack (dry run)")
    bench.add_argument("kind", choices=list(KINDS))
    bench.add_argument("--suite", type=Path, required=True, help="suite JSON (format in DESIGN.md)")
    bench.add_argument("--out", type=Path, required=True, help="where to write the results JSON")
    bench.add_argument("--k", type=int, default=15, help="candidates the filter returns (default 15)")
    bench.add_argument("--no-turns", action="store_true", help="single: skip the whole-turn measurement")

    status = sub.add_parser("status", help="Redis streams and service health")
    status.add_argument("--json", action="store_true")

    top = sub.add_parser("top", help="live per-stage latency and throughput, from every service's metrics")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    top.add_argument("--iterations", type=int, default=None, help="stop after this many refreshes")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = CliSettings()
    if args.command == "status":
        sys.exit(cmd_status(settings, args))
    if args.command == "top":
        sys.exit(cmd_top(settings, args))
    if args.command == "bench":
        sys.exit(cmd_bench(settings, args))
    if args.command == "plan":
        sys.exit(cmd_plan(settings, args))
    commands = {
        "ask": cmd_ask,
        "runs": cmd_runs,
        "show": cmd_show,
        "confirm": cmd_confirm,
        "fill": cmd_fill,
        "grants": cmd_grants,
        "revoke": cmd_revoke,
        "audit": cmd_audit,
        "undo": cmd_undo,
        "tools": cmd_tools,
    }
    sys.exit(commands[args.command](Client(settings), args))


if __name__ == "__main__":
    main()
