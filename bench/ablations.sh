#!/usr/bin/env bash
# The ablations of docs/benchmarks.md, on the test halves: each configuration gets a stack of its own
# (started, measured, stopped), and its results go to bench/results/<configuration>/.
#   bench/ablations.sh [CONFIG ...]     CONFIG: base-encoder, no-model, no-session, rules-splitter,
#                                       model-writes, q4-1 (default: all six)
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
[ ${#configs[@]} -gt 0 ] || configs=(base-encoder no-model no-session rules-splitter model-writes q4-1)
for config in "${configs[@]}"; do
    case $config in
        # The shipped all-MiniLM-L6-v2 with the fusion weight it was tuned with, and no "no tool fits"
        # threshold (the trained encoder's does not carry over to another encoder).
        base-encoder) env=(SWITCHBOARD_EMBEDDING_MODEL="$BASE" SWITCHBOARD_FILTER_DENSE_WEIGHT=0.65 SWITCHBOARD_FILTER_MIN_SIMILARITY=-1)
                      kinds=(single chain turns edge) ;;
        no-model)     env=(SWITCHBOARD_ROUTER_USE_MODEL=false); kinds=(single turns args) ;;
        no-session)   env=(SWITCHBOARD_PLANNER_SESSION_MEMORY=false); kinds=(turns) ;;
        # The word-list splitter of issues 1-9 instead of the dependency parse.
        rules-splitter) env=(SWITCHBOARD_PLANNER_SPLITTER=rules); kinds=(chain compound turns) ;;
        # The model writes free-text values under the schema's grammar instead of copying spans.
        model-writes) env=(SWITCHBOARD_ROUTER_SPAN_COPY=false); kinds=(args single) ;;
        # The model as shipped (Q4_1) instead of re-quantized to Q4_0.
        q4-1)         shipped=models/SmolLM2-135M-Instruct.Q4_1.gguf
                      env=(SWITCHBOARD_ROUTER_MODEL=$shipped SWITCHBOARD_PLANNER_MODEL=$shipped); kinds=(args single) ;;
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
