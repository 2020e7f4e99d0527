#!/usr/bin/env bash
# End to end: the composed edge component (target/edge/edge-shipstation.wasm),
# served by a wasi:http/proxy runtime, must answer `POST /trackOrder` exactly as
# `actionbox run` answers, against the ShipStation simulator on 127.0.0.1.
#
#   tests/edge/e2e.sh COMPOSED.wasm serve|jco        (make edge-test runs both)
#
#   serve  tests/edge-serve (wasmtime, links only the proxy world + wasi:config/store)
#   jco    `jco serve` (Node.js), a fresh component instance per request;
#          wasi:config/store from tests/edge/jco-config.mjs
#
# Both runtimes hand the component its configuration the same way: the
# runtime's ACTIONBOX_* environment variables become wasi:config/store keys
# with lower-cased names (ACTIONBOX_API_KEY -> actionbox_api_key).
#
# Environment (defaults are the repo's build outputs): ACTIONBOX, SIMULATOR,
# SHIPSTATION_WASM, EDGE_SERVE, JCO. Exits non-zero on any mismatch.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

COMPOSED=$(need_file "${1:?usage: e2e.sh COMPOSED.wasm serve|jco}" "run \`make edge\`")
RUNTIME=${2:?usage: e2e.sh COMPOSED.wasm serve|jco}
ACTIONBOX=$(need_file "${ACTIONBOX:-$ROOT/target/release/actionbox}" "run \`make build\`")
SIMULATOR=$(need_file "${SIMULATOR:-$ROOT/target/release/shipstation-sim}" "run \`make build\`")
SHIPSTATION_WASM=$(need_file "${SHIPSTATION_WASM:-$ROOT/target/wasm32-wasip2/release/shipstation.wasm}" "run \`make build\`")
need_runtime "$RUNTIME"

token=edge-e2e-$(random_hex)   # the gateway's bearer token for this run
start_simulator "$SIMULATOR"

# Start the runtime with the given API key in its configuration; sets $url, $rt, $log.
start() { # api-key
  # The runtime gets exactly this configuration, nothing from the caller's environment.
  start_runtime "$RUNTIME" "$COMPOSED" \
    "ACTIONBOX_BASE_URL=$base" "ACTIONBOX_API_KEY=$1" "ACTIONBOX_AUTH_TOKEN=$token" "ACTIONBOX_LOG=info"
}

post() { # path, body -> HTTP status; body in $dir/body
  curl -s --max-time 60 -o "$dir/body" -w '%{http_code}' -X POST "$url/$1" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' --data-binary "$2" || echo 000
  cat "$dir/body" >>"$dir/bodies" 2>/dev/null || true
}
get() { # path -> HTTP status; body in $dir/body
  curl -s --max-time 60 -o "$dir/body" -w '%{http_code}' -H "authorization: Bearer $token" "$url/$1" || echo 000
  cat "$dir/body" >>"$dir/bodies" 2>/dev/null || true
}
same_json() { python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])) == json.load(open(sys.argv[2])) else 1)' "$1" "$2" 2>/dev/null; }
has_kind() { python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["error"]["kind"] == sys.argv[2] else 1)' "$dir/body" "$1" 2>/dev/null; }

echo "== $RUNTIME: $(basename "$COMPOSED") vs actionbox run, simulator at $base"
start "$key"
for order in 1001 1002 1003 1004 1006 1007 1008 1009 SHOPIFY-123456789 '#1001'; do
  input="{\"order_id\":\"$order\"}"
  if ! SHIPSTATION_API_KEY=$key "$ACTIONBOX" run "$SHIPSTATION_WASM" trackOrder --input "$input" \
      --base-url "$base" >"$dir/ref" 2>"$dir/ref.err" </dev/null; then
    echo "FAIL trackOrder $order: the reference \`actionbox run\` failed: $(redact <"$dir/ref.err" | tail -n 1)"
    fail=1
    continue
  fi
  code=$(post trackOrder "$input")
  check "trackOrder $order: HTTP $code, same JSON as actionbox run" '[ "$code" = 200 ] && same_json "$dir/ref" "$dir/body"'
done
code=$(post trackOrder '{"order_id":"NO-SUCH-ORDER"}')
check "unknown order -> 404 not-found" '[ "$code" = 404 ] && has_kind not-found'
code=$(post trackOrder '{}')
check "missing order_id -> 400 invalid-input" '[ "$code" = 400 ] && has_kind invalid-input'
code=$(post trackOrder 'not json')
check "non-JSON body -> 400 invalid-input" '[ "$code" = 400 ] && has_kind invalid-input'
code=$(post nosuch '{}')
check "unknown method -> 404 unknown-method" '[ "$code" = 404 ] && has_kind unknown-method'
code=$(post trackOrder "{\"order_id\":\"$(head -c 70000 /dev/zero | tr '\0' 1)\"}")
check "body over 64 KiB -> 413" '[ "$code" = 413 ]'
code=$(curl -s --max-time 30 -o "$dir/body" -w '%{http_code}' -H "authorization: Bearer $token" "$url/" || echo 000)
check "GET / -> the manifest (credential header API-Key)" \
  '[ "$code" = 200 ] && python3 -c "import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))[\"credential\"][\"header\"] == \"API-Key\" else 1)" "$dir/body"'
code=$(get test-connection)
check "GET /test-connection -> 200, the key accepted" \
  '[ "$code" = 200 ] && python3 -c "import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))[\"ok\"] is True else 1)" "$dir/body"'
code=$(curl -s --max-time 30 -o "$dir/body" -w '%{http_code}' -X POST "$url/trackOrder" -d '{"order_id":"1001"}' || echo 000)
check "no bearer token -> 401" '[ "$code" = 401 ]'
code=$(curl -s --max-time 30 -o "$dir/body" -w '%{http_code}' -X POST -H "authorization: Bearer ${token}x" "$url/trackOrder" -d '{"order_id":"1001"}' || echo 000)
check "wrong bearer token -> 401" '[ "$code" = 401 ]'
code=$(curl -s --max-time 30 -o "$dir/body" -w '%{http_code}' "$url/healthz" || echo 000)
check "GET /healthz without a token -> 200" '[ "$code" = 200 ]'
t0=$(now_us)
for _ in $(seq 20); do post trackOrder '{"order_id":"1002"}' >/dev/null; done
echo "     20 sequential trackOrder 1002: $(since "$t0")s total"
stop_group "$rt"

start wrong-key
code=$(post trackOrder '{"order_id":"1001"}')
check "wrong API key -> 502 unauthorized" '[ "$code" = 502 ] && has_kind unauthorized'
code=$(get test-connection)
check "wrong API key: GET /test-connection -> 502 unauthorized" '[ "$code" = 502 ] && has_kind unauthorized'
stop_group "$rt"

start ""
code=$(post trackOrder '{"order_id":"1001"}')
check "no API key configured -> 502, naming actionbox_api_key" '[ "$code" = 502 ] && grep -q actionbox_api_key "$dir/body"'
stop_group "$rt"

check "the API key appears in no response and no runtime log" '! grep -qF -- "$key" "$dir/bodies" "$dir"/rt-*.log'
if [ "$fail" = 0 ]; then echo "== $RUNTIME: all checks passed"; else echo "== $RUNTIME: FAILED"; fi
exit "$fail"
