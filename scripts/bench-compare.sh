#!/usr/bin/env bash
# Compares two airlock binaries on the HTTP, MCP and hook benchmarks, interleaved, N rounds:
#   scripts/bench-compare.sh OLD_BINARY NEW_BINARY [ROUNDS]
# Results land in /tmp/bench-out (JSON per run; hyperfine JSON for the hook). Needs the
# MCP Python SDK (the tests install it), curl and hyperfine.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
BASE=$1; NEW=$2; ROUNDS=${3:-3}; OUT=/tmp/bench-out; mkdir -p $OUT
python3 "$REPO/crates/airlock-server/tests/mcp/upstream_server.py" --transport http --port 8765 --state /tmp/bench-n.json > /tmp/bench-up.log 2>&1 &
UP=$!
for i in $(seq 1 60); do curl -s -o /dev/null http://127.0.0.1:8765/mcp && break; sleep 0.2; done
for r in $(seq 1 $ROUNDS); do
  for which in base new; do
    BIN=$BASE; [ $which = new ] && BIN=$NEW
    d=$(mktemp -d); cd $d
    $BIN bench http --rate 500 --seconds 10 --json > $OUT/http-$which-$r.json 2>/dev/null
    $BIN bench mcp --upstream-url http://127.0.0.1:8765/mcp --calls 1000 --json > $OUT/mcp-$which-$r.json 2>/dev/null
    cd /tmp; rm -rf $d
  done
done
kill $UP
# Hook: a served gate per binary, the hook process timed end to end by hyperfine.
for which in base new; do
  BIN=$BASE; [ $which = new ] && BIN=$NEW
  d=$(mktemp -d); cd $d
  printf '[server]\nlisten = "127.0.0.1:7391"\n' > airlock.toml
  TOK=$($BIN token create --agent coder 2>/dev/null | grep -o 'alk_[0-9a-f]*' | head -1)
  $BIN serve --config airlock.toml > serve.log 2>&1 &
  SP=$!
  for i in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:7391/healthz && break; sleep 0.1; done
  AIRLOCK_URL=http://127.0.0.1:7391 AIRLOCK_TOKEN=$TOK hyperfine --warmup 10 --runs 200 --export-json $OUT/hook-$which.json "$BIN hook claude-code < $REPO/scripts/bench-hook-event.json" > $OUT/hook-$which.txt 2>&1
  AIRLOCK_URL=http://127.0.0.1:7391 AIRLOCK_TOKEN=$TOK $BIN hook claude-code < "$REPO/scripts/bench-hook-event.json" > $OUT/hook-$which-answer.json 2>&1
  kill $SP; wait $SP 2>/dev/null
  cd /tmp; rm -rf $d
done
echo done
