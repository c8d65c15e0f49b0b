"""Whole-run time of read requests, from the run's creation to its final status, against a running stack.

    .venv/bin/python bench/whole_run.py [--runs N]

Unlike `bench/overhead.py` it needs nothing but a run's creation and update times, which every
release's API has served, so it measures an older release the same way (start that release's stack
with its own state directory, then point this at it with SWITCHBOARD_STATE_DIR and
SWITCHBOARD_HTTP_PORT). The requests read a scratch folder it makes inside the first allowed root.
"""

from __future__ import annotations

import argparse
import statistics

from overhead import api_client, finished, percentile, read_requests, scratch_folder

from switchboard.settings import CommonSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="runs of each kind (after 5 to warm up)")
    args = parser.parse_args()
    settings = CommonSettings()
    kinds = read_requests(scratch_folder(settings, "bench-whole-run"))
    with api_client(settings) as http:
        for kind, texts in kinds.items():
            totals: list[float] = []
            for number in range(args.runs + 5):
                run = finished(http, texts[number % len(texts)])
                if run["status"] != "answered":
                    raise SystemExit(f"a bench run did not answer ({run['status']}): {run['answer']}")
                if number >= 5:
                    totals.append((run.get("finished_unix_ms") or run["updated_unix_ms"]) - run["created_unix_ms"])
            print(
                f"{kind:<9}: whole run p50 {statistics.median(totals):6.1f} ms  p95 {percentile(totals, 0.95):6.1f} ms"
                f"  ({len(totals)} runs)"
            )


if __name__ == "__main__":
    main()
