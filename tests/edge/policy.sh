#!/usr/bin/env bash
# What the composition lets an action do, checked with the test-only probe
# action (tests/edge-probe) composed exactly like ShipStation and served
# against the simulator (which answers 401 without the right API-Key).
#
#   tests/edge/policy.sh target/edge/edge-probe.wasm serve|jco      (make edge-test runs both)
#
# On jco the key is also in the runtime's process environment (that is where
# tests/edge/jco-config.mjs reads it from), so `env` answering nothing there
# shows the stubs, not the runtime, give the action its environment.
#
# Environment: SIMULATOR, EDGE_SERVE, JCO (default: the repo's build outputs).
# Exits non-zero on any unexpected answer.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COMPOSED=$(need_file "${1:?usage: policy.sh COMPOSED-PROBE.wasm serve|jco}" "run \`make edge-test\` (it composes the probe)")
RUNTIME=${2:?usage: policy.sh COMPOSED-PROBE.wasm serve|jco}
SIMULATOR=$(need_file "${SIMULATOR:-$ROOT/target/release/shipstation-sim}" "run \`make build\`")
need_runtime "$RUNTIME"

start_simulator "$SIMULATOR"
hostport=${base#http://}
echo "== policy ($RUNTIME): $(basename "$COMPOSED"), simulator at $base"
start_runtime "$RUNTIME" "$COMPOSED" \
  "ACTIONBOX_BASE_URL=$base/" "ACTIONBOX_API_KEY=$key" ACTIONBOX_LOG=warn ACTIONBOX_NO_AUTH=1

probe() { curl -s --max-time 30 -X POST "$url/$1" --data-binary "$2" || true; }
expect() { # name, method, input, expected substring of the answer
  local got; got=$(probe "$2" "$3")
  printf '%s\n' "$got" >>"$dir/bodies"
  if [[ "$got" == *"$4"* ]]; then echo "ok   $1"; else echo "FAIL $1: $(printf '%s' "$got" | redact)"; fail=1; fi
}
expect "the action sees no environment" env '{}' '{"env": [], "args": []}'
expect "config: base_url is the operator's, without the trailing slash; get-all lists only it" \
  config '{"key":"base_url"}' "{\"get\": \"$base\", \"all\": [\"base_url\"]}"
expect "config: the runtime's actionbox_api_key is none to the action" \
  config '{"key":"actionbox_api_key"}' '{"get": null, "all": ["base_url"]}'
expect "config: the runtime's other keys are none to the action" \
  config '{"key":"actionbox_no_auth"}' '{"get": null, "all": ["base_url"]}'
expect "base-URL origin: key injected by the adapter, simulator answers 200" \
  fetch "{\"url\":\"$base/v2/shipments?page=1&page_size=1\"}" '{"status": 200}'
expect "the action's own API-Key header: refused" fetch "{\"url\":\"$base/v2/shipments\",\"header\":\"api-key\"}" HttpRequestDenied
expect "another loopback port: refused" fetch '{"url":"http://127.0.0.1:9/x"}' HttpRequestDenied
expect "same host:port over https: refused" fetch "{\"url\":\"https://$hostport/v2/shipments\"}" HttpRequestDenied
expect "same port as localhost: refused" fetch "{\"url\":\"http://localhost:${hostport##*:}/v2/shipments\"}" HttpRequestDenied
expect "a public host: refused" fetch '{"url":"https://example.com/"}' HttpRequestDenied
check "the API key appears in no answer and no runtime log" '! grep -qF -- "$key" "$dir/bodies" "$log"'
if [ "$fail" = 0 ]; then echo "== policy ($RUNTIME): all checks passed"; else echo "== policy ($RUNTIME): FAILED"; fi
exit "$fail"
