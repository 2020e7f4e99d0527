#!/usr/bin/env bash
# What the composition lets an action do, checked with the test-only probe
# action (tests/edge-probe) composed exactly like ShipStation and served by
# edge-serve against the simulator (which answers 401 without the right API-Key).
#
#   tests/edge/policy.sh target/edge/edge-probe.wasm      (make edge-test)
#
# Environment: SIMULATOR, EDGE_SERVE (default: the repo's build outputs).
# Exits non-zero on any unexpected answer.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COMPOSED=$(need_file "${1:?usage: policy.sh COMPOSED-PROBE.wasm}" "run \`make edge-test\` (it composes the probe)")
SIMULATOR=$(need_file "${SIMULATOR:-$ROOT/target/release/shipstation-sim}" "run \`make build\`")
EDGE_SERVE=$(need_file "${EDGE_SERVE:-$ROOT/target/release/edge-serve}" "run \`cargo build --release -p edge-serve\`")

start_simulator "$SIMULATOR"
hostport=${base#http://}
echo "== policy: $(basename "$COMPOSED") on edge-serve, simulator at $base"
spawn "$dir/rt.log" "ACTIONBOX_BASE_URL=$base" "ACTIONBOX_API_KEY=$key" ACTIONBOX_LOG=warn ACTIONBOX_NO_AUTH=1 -- \
  "$EDGE_SERVE" "$COMPOSED" --listen 127.0.0.1:0 --url-file "$dir/rt.url"
wait_for_file "$dir/rt.url" "$started" "edge-serve" "$dir/rt.log"
url=$(cat "$dir/rt.url")
case "$url" in http://127.0.0.1:*) ;; *) echo "edge-serve is not on 127.0.0.1: $url" >&2; exit 1 ;; esac

probe() { curl -s --max-time 30 -X POST "$url/$1" --data-binary "$2" || true; }
expect() { # name, method, input, expected substring of the answer
  local got; got=$(probe "$2" "$3")
  printf '%s\n' "$got" >>"$dir/bodies"
  if [[ "$got" == *"$4"* ]]; then echo "ok   $1"; else echo "FAIL $1: $(printf '%s' "$got" | redact)"; fail=1; fi
}
expect "the action sees no environment (the key is in the runtime's)" env '{}' '{"env": [], "args": []}'
expect "base-URL origin: key injected by the adapter, simulator answers 200" \
  fetch "{\"url\":\"$base/v2/shipments?page=1&page_size=1\"}" '{"status": 200}'
expect "the action's own API-Key header: refused" fetch "{\"url\":\"$base/v2/shipments\",\"header\":\"api-key\"}" HttpRequestDenied
expect "another loopback port: refused" fetch '{"url":"http://127.0.0.1:9/x"}' HttpRequestDenied
expect "same host:port over https: refused" fetch "{\"url\":\"https://$hostport/v2/shipments\"}" HttpRequestDenied
expect "same port as localhost: refused" fetch "{\"url\":\"http://localhost:${hostport##*:}/v2/shipments\"}" HttpRequestDenied
expect "a public host: refused" fetch '{"url":"https://example.com/"}' HttpRequestDenied
check "the API key appears in no answer and no runtime log" '! grep -qF -- "$key" "$dir/bodies" "$dir/rt.log"'
if [ "$fail" = 0 ]; then echo "== policy: all checks passed"; else echo "== policy: FAILED"; fi
exit "$fail"
