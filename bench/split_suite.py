#!/usr/bin/env python3
"""Split a suite written outside the project into a dev half (to build with) and a test half (frozen).

`bench/split_suite.py SOURCE... --name single` writes `bench/suites/single-dev.json` and
`bench/suites/single-test.json`: the cases of all SOURCE files, shuffled with a fixed seed within each
category, alternately to dev and test, so both halves cover the same categories. Only counts are
printed: the person splitting does not read the test half.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

SEED = 9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--name", required=True, help="suite name: single, chain, edge or args")
    parser.add_argument("--dir", type=Path, default=Path(__file__).with_name("suites"))
    args = parser.parse_args()
    cases = [case for source in args.sources for case in json.loads(source.read_text(encoding="utf-8"))]
    groups: dict[str, list[dict]] = defaultdict(list)
    for case in cases:
        groups[case.get("category") or case.get("expectedBehavior") or ""].append(case)
    rng = random.Random(SEED)
    halves: dict[str, list[dict]] = {"dev": [], "test": []}
    turn = 0
    for category in sorted(groups):
        members = groups[category]
        rng.shuffle(members)
        for case in members:
            halves["dev" if turn % 2 == 0 else "test"].append(case)
            turn += 1
    for half, members in halves.items():
        path = args.dir / f"{args.name}-{half}.json"
        path.write_text(json.dumps(members, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path}: {len(members)} cases")


if __name__ == "__main__":
    main()
