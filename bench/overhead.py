"""Pipeline overhead per step, against a running stack (`make start`): all of a run's time but the models'
and the tools'.

    .venv/bin/python bench/overhead.py [--runs N] [--out FILE]

Each run is submitted over the HTTP API and read back once finished. A run's time is from the record's
creation to its final status (`created_unix_ms` → `finished_unix_ms`, stamped by the services). From
it the bench takes away what each step spent in the filter (the encoder and ranking: `rank_ms`), in the
router (reading the words, the model: `route_ms`) and in the tool (`duration_ms`, measured by the tool
host around the MCP call); what is left is the pipeline: streams, Redis, gRPC, the gateway's policy,
the planner's bookkeeping, and its planning (the parse of the request) besides, which is counted as
overhead here, not as model time. Prints p50/p95 of the overhead per step for one-step and two-step
requests, and all of it as JSON with --out.

The requests read a scratch folder the bench makes inside the first allowed root: nothing waits for a
person, and nothing is changed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import httpx

from switchboard.settings import CommonSettings

FINAL = ("answered", "failed", "refused", "needs_clarification")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def finished(http: httpx.Client, text: str) -> dict:
    """Submit `text`, follow the run's event stream (no polling, which would load the machine being
    measured) until it finishes, and read the run."""
    run_id = http.post("/v1/turns", json={"text": text}).raise_for_status().json()["run_id"]
    with http.stream("GET", f"/v1/runs/{run_id}/events", timeout=120) as events:
        for line in events.iter_lines():
            if line == "event: finished":
                break
    run = http.get(f"/v1/runs/{run_id}").raise_for_status().json()
    if run["status"] not in FINAL:
        raise RuntimeError(f"run {run_id} ended its events as {run['status']}")
    return run


def scratch_folder(settings: CommonSettings, name: str) -> Path:
    """A folder with two small files inside the first allowed root, for read requests."""
    scratch = settings.roots()[0] / name
    scratch.mkdir(parents=True, exist_ok=True)
    for file in ("alpha.txt", "beta.txt"):
        (scratch / file).write_text(f"{file}\n")
    return scratch


def read_requests(scratch: Path) -> dict[str, list[str]]:
    """The requests of each kind the benches send: one step that reads, and two."""
    return {
        "one step": [f"List the files in {scratch}", f"Read {scratch / 'alpha.txt'}"],
        "two steps": [f"List the files in {scratch}, then read {scratch / 'beta.txt'}"],
    }


def api_client(settings: CommonSettings) -> httpx.Client:
    token = settings.token_path.read_text().strip()
    return httpx.Client(
        base_url=f"http://127.0.0.1:{settings.http_port}", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def overhead_per_step(run: dict) -> float:
    total = run["finished_unix_ms"] - run["created_unix_ms"]
    inside = sum(step["rank_ms"] + step["route_ms"] + step["duration_ms"] for step in run["steps"])
    return (total - inside) / max(1, len(run["steps"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=60, help="runs of each kind (after 5 to warm up)")
    parser.add_argument("--out", type=Path, help="write every run's figures here as JSON")
    args = parser.parse_args()
    settings = CommonSettings()
    kinds = read_requests(scratch_folder(settings, "bench-overhead"))
    figures: dict[str, list[dict]] = {}
    with api_client(settings) as http:
        for kind, texts in kinds.items():
            for number in range(5):  # warm up: the first runs load what the services load lazily
                finished(http, texts[number % len(texts)])
            figures[kind] = []
            for number in range(args.runs):
                run = finished(http, texts[number % len(texts)])
                if run["status"] != "answered":
                    sys.exit(f"a bench run did not answer ({run['status']}): {run['answer']}")
                figures[kind].append(
                    {
                        "steps": len(run["steps"]),
                        "total_ms": run["finished_unix_ms"] - run["created_unix_ms"],
                        "overhead_per_step_ms": overhead_per_step(run),
                        "rank_ms": [s["rank_ms"] for s in run["steps"]],
                        "route_ms": [s["route_ms"] for s in run["steps"]],
                        "tool_ms": [s["duration_ms"] for s in run["steps"]],
                    }
                )
            values = [f["overhead_per_step_ms"] for f in figures[kind]]
            totals = [f["total_ms"] for f in figures[kind]]
            print(
                f"{kind:<9}: overhead per step p50 {statistics.median(values):6.1f} ms  p95 "
                f"{percentile(values, 0.95):6.1f} ms  (whole run p50 {statistics.median(totals):6.1f} ms, "
                f"{len(values)} runs, {os.cpu_count()} CPUs)"
            )
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
