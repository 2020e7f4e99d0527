#!/usr/bin/env bash
# End to end: the composed edge component (target/edge/edge-shipstation.wasm),
# served by a wasi:http/proxy runtime, must answer `POST /trackOrder` exactly as
# `actionbox run` answers, against the ShipStation simulator on 127.0.0.1.
#
#   tests/edge/e2e.sh COMPOSED.wasm serve|jco        (make edge-test runs both)
#
#   serve  tests/edge-serve (wasmtime, links only the proxy world + environment)
#   jco    `jco serve` (Node.js), a fresh component instance per request
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
case "$RUNTIME" in
  serve) EDGE_SERVE=$(need_file "${EDGE_SERVE:-$ROOT/target/release/edge-serve}" "run \`cargo build --release -p edge-serve\`") ;;
  jco)   JCO=$(need_file "${JCO:-$ROOT/tests/jco/node_modules/.bin/jco}" "run \`cd tests/jco && npm ci\`")
         command -v node >/dev/null || { echo "jco serve needs Node.js >= 20 on PATH" >&2; exit 1; } ;;
  *) echo "unknown runtime $RUNTIME (serve or jco)" >&2; exit 2 ;;
esac

token=edge-e2e-$(random_hex)   # the gateway's bearer token for this run
start_simulator "$SIMULATOR"

runs=0
# Start the runtime with the given API key in its environment; sets $url, $rt.
start() { # api-key
  runs=$((runs + 1))
  local log="$dir/rt-$runs.log" t0; t0=$(now_us)
  # The component gets exactly this configuration, nothing from the caller's environment.
  local cfg=("ACTIONBOX_BASE_URL=$base" "ACTIONBOX_API_KEY=$1" "ACTIONBOX_AUTH_TOKEN=$token" "ACTIONBOX_LOG=info" --)
  case "$RUNTIME" in
    serve)
      spawn "$log" "${cfg[@]}" "$EDGE_SERVE" "$COMPOSED" --listen 127.0.0.1:0 --url-file "$dir/rt-$runs.url"
      rt=$started
      wait_for_file "$dir/rt-$runs.url" "$rt" "edge-serve" "$log"
      url=$(cat "$dir/rt-$runs.url")
      ;;
    jco)
      # jco serve cannot report the port it bound: pick a free one, retry if it was taken meanwhile.
      local attempt port
      for attempt in 1 2 3; do
        port=$(free_port)
        spawn "$log" "${cfg[@]}" "$JCO" serve --host 127.0.0.1 --port "$port" \
          --isolate-requests instance --jco-dir "$dir/jco-$runs-$attempt" "$COMPOSED"
        rt=$started
        url=http://127.0.0.1:$port
        for _ in $(seq 600); do
          curl -sf --max-time 2 -o /dev/null "$url/healthz" && break
          kill -0 "$rt" 2>/dev/null || break
          sleep 0.1
        done
        kill -0 "$rt" 2>/dev/null && break
        grep -q EADDRINUSE "$log" || break
        echo "port $port was taken; trying another"
      done
      ;;
  esac
  case "$url" in http://127.0.0.1:*) ;; *) echo "$RUNTIME is not on 127.0.0.1: $url" >&2; exit 1 ;; esac
  for _ in $(seq 600); do
    curl -sf --max-time 2 -o /dev/null "$url/healthz" && break
    kill -0 "$rt" 2>/dev/null || break
    sleep 0.1
  done
  if ! curl -sf --max-time 2 -o /dev/null "$url/healthz"; then
    echo "$RUNTIME did not become healthy at $url; last lines of its log:" >&2
    tail -n 20 "$log" | redact >&2
    exit 1
  fi
  echo "$RUNTIME ready in $(since "$t0")s at $url"
}

post() { # path, body -> HTTP status; body in $dir/body
  curl -s --max-time 60 -o "$dir/body" -w '%{http_code}' -X POST "$url/$1" \
    -H "authorization: Bearer $token" -H 'content-type: application/json' --data-binary "$2" || echo 000
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
stop_group "$rt"

start ""
code=$(post trackOrder '{"order_id":"1001"}')
check "no API key configured -> 502, naming ACTIONBOX_API_KEY" '[ "$code" = 502 ] && grep -q ACTIONBOX_API_KEY "$dir/body"'
stop_group "$rt"

check "the API key appears in no response and no runtime log" '! grep -qF -- "$key" "$dir/bodies" "$dir"/rt-*.log'
if [ "$fail" = 0 ]; then echo "== $RUNTIME: all checks passed"; else echo "== $RUNTIME: FAILED"; fi
exit "$fail"
