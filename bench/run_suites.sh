#!/usr/bin/env bash
# Run the project's test-half suites through the running stack (dry run), starting a stack if none is
# running (and stopping it again afterwards). Results go to bench/results/; `make bench` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SB=.venv/bin/sb
started=0
if ! $PY -m switchboard.stack wait --timeout 2 >/dev/null 2>&1; then
    # The suites speak of a person whose home is /home/user ("~/Documents" and "/home/user/Documents"
    # are the same folder) and whose files are all below it; the stack is started to match. A stack
    # that is already running is used as it is configured.
    SWITCHBOARD_USER_HOME=/home/user SWITCHBOARD_ALLOWED_ROOTS=/home/user $PY -m switchboard.stack start
    started=1
fi
trap 'if [ $started = 1 ]; then $PY -m switchboard.stack stop; fi' EXIT
mkdir -p bench/results
$SB bench single --suite bench/suites/single-test.json --out bench/results/single-test.json
$SB bench chain --suite bench/suites/chain-test.json --out bench/results/chain-test.json
$SB bench turns --suite bench/suites/chain-test.json --out bench/results/turns-test.json
$SB bench edge --suite bench/suites/edge-test.json --out bench/results/edge-test.json
$SB bench args --suite bench/suites/args-test.json --out bench/results/args-test.json
$SB bench compound --suite bench/suites/compound-test.json --out bench/results/compound-test.json
