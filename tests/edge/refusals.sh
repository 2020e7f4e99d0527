#!/usr/bin/env bash
# What guest/edge/compose.sh must refuse to compose. `wac plug` wires by name,
# so an untrusted action's names decide what it gets: each world in
# tests/edge/refusals/refusals.wit is built as a dummy component (only names
# matter here) and composed; the control must compose, every other one must
# be refused with a message that says why.
#
#   tests/edge/refusals.sh        (make edge-test; needs `make edge` first)
#
# Environment: WASM_TOOLS, WAC, EDGE_WASM_DIR (as for compose.sh).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WASM_TOOLS=$(need_file "${WASM_TOOLS:-$ROOT/target/tools/bin/wasm-tools}" "run \`make edge-tools\`")
export WASM_TOOLS WAC=${WAC:-$ROOT/target/tools/bin/wac}

# One WIT directory: the worlds here, the repo's contract and WASI packages as deps.
mkdir -p "$dir/wit/deps"
cp "$ROOT/tests/edge/refusals/refusals.wit" "$dir/wit/"
cp "$ROOT"/wit/deps/*.wit "$ROOT"/tests/edge/refusals/deps/*.wit "$dir/wit/deps/"
cp "$ROOT/wit/world.wit" "$dir/wit/deps/actionbox-action.wit"

compose() { # world, expected substring of compose.sh's stderr ("" = must compose)
  local world=$1 want=$2 rc=0 before=$fail
  fail=0
  "$WASM_TOOLS" component embed --dummy "$dir/wit" --world "$world" -o "$dir/$world.core.wasm"
  "$WASM_TOOLS" component new "$dir/$world.core.wasm" -o "$dir/$world.wasm"
  "$ROOT/guest/edge/compose.sh" "$dir/$world.wasm" "$dir/$world.out.wasm" >"$dir/$world.log" 2>&1 || rc=$?
  if [ -z "$want" ]; then
    check "$world: composes" '[ "$rc" = 0 ] && [ -f "$dir/$world.out.wasm" ]'
  else
    check "$world: refused ($want)" '[ "$rc" != 0 ] && [ ! -e "$dir/$world.out.wasm" ] && grep -qF -- "$want" "$dir/$world.log"'
  fi
  [ "$fail" = 0 ] || sed 's/^/     /' "$dir/$world.log"
  fail=$((fail | before))
}

echo "== refusals: what compose.sh lets an action's names decide"
compose plain ""
compose exports-config-store "an action must export only actionbox:action/action@0.2.0"
compose targets-0-1-0 "it targets actionbox:action@0.1.0"
compose second-config-store "imports wasi:config/store more than once"
compose other-config-store "imports wasi:config/store@0.2.0-rc.2 which the edge adapter does not provide"
compose imports-filesystem "imports wasi:filesystem/preopens@0.2.12: not allowed"
if [ "$fail" = 0 ]; then echo "== refusals: all checks passed"; else echo "== refusals: FAILED"; fi
exit "$fail"
