#!/usr/bin/env bash
# No egress: runs `lore ingest`, `lore serve` with an ask through its API, and `lore ask`,
# each under `strace -f`, inside a network namespace that has only loopback. Called by the
# end-to-end test `no_outbound_connections_with_default_settings` as
#
#     unshare --map-root-user --net tests/no-egress.sh LORE CORPUS QUESTION OUT
#
# which reads the traces (OUT/*.trace) and the answers (OUT/*.json). Lore's settings come
# from the caller's environment (the defaults, with LORE_DATA_DIR and LORE_MODELS_DIR).
set -euo pipefail
lore=$1 corpus=$2 question=$3 out=$4
ip link set lo up
# The namespace: loopback alone, no route anywhere else.
ip -o link > "$out/links"
ip route > "$out/routes" 2>&1 || true
trace() {
  local name=$1
  shift
  strace -f -qq -e trace=execve,connect,sendto,sendmsg,bind -o "$out/$name.trace" "$@"
}
# The control: a connection attempt outside, to prove the tracing and the reading of the
# traces see one (192.0.2.1 is TEST-NET-1; unreachable here in any case).
trace control curl -s --max-time 2 http://192.0.2.1/ > /dev/null 2>&1 || true

trace ingest "$lore" ingest -q "$corpus"

# strace itself in the background (not the function, whose subshell would stand between),
# so the traced server is strace's child.
strace -f -qq -e trace=execve,connect,sendto,sendmsg,bind -o "$out/serve.trace" \
  "$lore" serve --bind 127.0.0.1:0 > "$out/serve.out" 2> "$out/serve.err" &
strace_pid=$!
for _ in $(seq 1200); do
  grep -q "serving on" "$out/serve.out" 2>/dev/null && break
  kill -0 "$strace_pid" 2>/dev/null || { echo "lore serve exited" >&2; exit 1; }
  sleep 0.25
done
url=$(grep -o 'http://[^ ]*' "$out/serve.out" | head -n 1)
body=$(python3 -c 'import json, sys; print(json.dumps({"question": sys.argv[1], "stream": False}))' "$question")
curl -sS --max-time 600 -o "$out/ask-http.json" -w '%{http_code}' \
  -H 'content-type: application/json' -d "$body" "${url}api/ask" > "$out/ask-http.status"
# Stop the server (the traced lore, strace's child) and let strace finish its log.
kill -TERM "$(pgrep -P "$strace_pid")"
wait "$strace_pid" || true

trace ask "$lore" ask --json "$question" > "$out/ask-cli.json"
