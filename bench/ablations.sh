#!/usr/bin/env bash
# The ablations of docs/benchmarks.md, on the test halves: each configuration gets a stack of its own
# (started, measured, stopped), and its results go to bench/results/<configuration>/.
#   bench/ablations.sh [CONFIG ...]     CONFIG: base-encoder, no-model, no-session (default: all three)
# The full system's figures are `make bench` (bench/run_suites.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SB=.venv/bin/sb
if $PY -m switchboard.stack wait --timeout 2 >/dev/null 2>&1; then
    echo "a stack is running; stop it first (make stop): each ablation starts its own" >&2
    exit 2
fi
BASE=$($PY -c "from switchboard.settings import default_embedding_path as d; print(d())")
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(base-encoder no-model no-session)
for config in "${configs[@]}"; do
    case $config in
        # The shipped all-MiniLM-L6-v2 with the fusion weight it was tuned with, and no "no tool fits"
        # threshold (the trained encoder's does not carry over to another encoder).
        base-encoder) env=(SWITCHBOARD_EMBEDDING_MODEL="$BASE" SWITCHBOARD_FILTER_DENSE_WEIGHT=0.65 SWITCHBOARD_FILTER_MIN_SIMILARITY=-1)
                      kinds=(single chain turns edge) ;;
        no-model)     env=(SWITCHBOARD_ROUTER_USE_MODEL=false); kinds=(single turns args) ;;
        no-session)   env=(SWITCHBOARD_PLANNER_SESSION_MEMORY=false); kinds=(turns) ;;
        *) echo "unknown configuration $config" >&2; exit 2 ;;
    esac
    out=bench/results/$config
    mkdir -p "$out"
    env "${env[@]}" SWITCHBOARD_USER_HOME=/home/user SWITCHBOARD_ALLOWED_ROOTS=/home/user $PY -m switchboard.stack start
    trap '$PY -m switchboard.stack stop' EXIT
    for kind in "${kinds[@]}"; do
        suite=$kind; [ "$kind" = turns ] && suite=chain
        $SB bench "$kind" --suite "bench/suites/$suite-test.json" --out "$out/$kind-test.json" >/dev/null
        echo "$config $kind: $($PY -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; s.pop('categories', None); print(json.dumps(s))" "$out/$kind-test.json")"
    done
    $PY -m switchboard.stack stop
    trap - EXIT
done
