"""Time the filter + router decision against a running stack, over gRPC.

    .venv/bin/python bench/route_latency.py [--repeat N] [PROMPT ...]

For each prompt: `Filter.Rank` then `Router.Route` (nothing is executed). Prints each decision and
the p50/p95 of rank, route and both together. Addresses come from the usual SWITCHBOARD_* settings.
"""

from __future__ import annotations

import argparse
import statistics
import time

from switchboard.auth import blocking_channel
from switchboard.settings import CommonSettings
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

DEFAULT_PROMPTS = [
    "List the files in /tmp",
    "What is inside /srv/reports?",
    "Read /etc/hostname",
    "Find every PDF under /home/ana/Documents",
    "Copy /tmp/a.txt to /tmp/b.txt",
    "Delete /tmp/old.log",
    "How big is /var/log/syslog and when was it changed?",
    "Move /tmp/draft.md to /tmp/final.md",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompts", nargs="*", default=DEFAULT_PROMPTS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = CommonSettings()
    rank_stub = pb_grpc.FilterStub(blocking_channel(settings.filter_addr, settings.internal_key()))
    route_stub = pb_grpc.RouterStub(blocking_channel(settings.router_addr, settings.internal_key()))

    rank_ms: list[float] = []
    route_ms: list[float] = []
    for round_number in range(args.repeat):
        for prompt in args.prompts:
            start = time.perf_counter()
            ranked = rank_stub.Rank(pb.RankRequest(text=prompt), timeout=60)
            middle = time.perf_counter()
            call = route_stub.Route(pb.RouteRequest(text=prompt, candidates=ranked.candidates), timeout=60)
            end = time.perf_counter()
            rank_ms.append((middle - start) * 1000)
            route_ms.append((end - middle) * 1000)
            if round_number == 0:
                outcome = pb.RouteOutcome.Name(call.outcome).removeprefix("ROUTE_OUTCOME_").lower()
                print(f"{prompt!r:60} -> {call.tool} {call.arguments_json} [{outcome}]")
    total = [a + b for a, b in zip(rank_ms, route_ms, strict=True)]
    print(f"\n{len(total)} decisions")
    for name, values in (("rank", rank_ms), ("route", route_ms), ("rank+route", total)):
        print(
            f"{name:<11} p50 {percentile(values, 0.5):7.1f} ms   p95 {percentile(values, 0.95):7.1f} ms   "
            f"mean {statistics.fmean(values):7.1f} ms"
        )


if __name__ == "__main__":
    main()
