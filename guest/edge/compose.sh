#!/usr/bin/env bash
# Compose one smart action (actionbox:action@0.2.0) with the edge gateway,
# adapter and cli-stubs into a single wasi:http/proxy component, then check
# what it imports.
#
#   guest/edge/compose.sh ACTION.wasm OUT.wasm      (make edge: target/edge/edge-shipstation.wasm)
#
# Needs the three edge components built for wasm32-wasip2 (EDGE_WASM_DIR,
# default target/wasm32-wasip2/release) and wasm-tools + wac (WASM_TOOLS, WAC,
# default target/tools/bin, installed by `make edge-tools`).
#
# Every edge of the composition is an interface one side exports and the other
# imports under the same name, so it is three plain `wac plug` calls:
#   1. adapter   -> action:  wasi:http/outgoing-handler (gated), wasi:config/store (filtered), actionbox:action/log
#   2. action    -> gateway: actionbox:action/action
#   3. cli-stubs -> all:     wasi:cli/exit, terminal-*, environment (empty) that Rust std imports
# Whatever is left is imported from the runtime and must be the proxy world
# plus wasi:config/store.
#
# `wac plug` wires by name, so the untrusted action's *names* are checked
# first: its exports must be exactly `actionbox:action/action` (anything more
# would be plugged into the gateway's imports: an action exporting
# `wasi:config/store` would hand the gateway its auth settings), and every
# interface the adapter guards must reach the adapter, not the runtime (the
# runtime's `wasi:config/store` holds the key; its outgoing-handler has no gate).
set -euo pipefail

ACTION=${1:?usage: compose.sh ACTION.wasm OUT.wasm}
OUT=${2:?usage: compose.sh ACTION.wasm OUT.wasm}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
R=${EDGE_WASM_DIR:-$ROOT/target/wasm32-wasip2/release}
WASM_TOOLS=${WASM_TOOLS:-$ROOT/target/tools/bin/wasm-tools}
WAC=${WAC:-$ROOT/target/tools/bin/wac}
for tool in "$WASM_TOOLS" "$WAC"; do
  command -v "$tool" >/dev/null || { echo "compose.sh: $tool not found: run \`make edge-tools\`" >&2; exit 1; }
done
ADAPTER=$R/edge_adapter.wasm GATEWAY=$R/edge_gateway.wasm STUBS=$R/edge_cli_stubs.wasm
for f in "$ACTION" "$ADAPTER" "$GATEWAY" "$STUBS"; do
  [ -f "$f" ] || { echo "compose.sh: $f is missing: run \`make edge\`" >&2; exit 1; }
done
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "compose.sh: $*" >&2; exit 1; }

# The root world of a component, its `import X;` lines (instances only), its exports.
world() { "$WASM_TOOLS" component wit "$1" | sed -n '/^world root {/,/^}/p'; }
instance_imports() { world "$1" | sed -n 's/^  import \([a-z0-9:/@.-]*\);$/\1/p'; }
exports() { world "$1" | sed -n 's/^  export \(.*\);$/\1/p'; }
# instance name without version: wasi:cli/exit@0.2.6 -> wasi:cli/exit
base() { echo "${1%@*}"; }
in_list() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# What the adapter guards: these must reach the action from the adapter only.
GUARDED="wasi:http/outgoing-handler wasi:config/store actionbox:action/log"
# What an edge runtime provides: the wasi:http/proxy world, plus wasi:config/store (configuration).
ALLOWED="wasi:io/poll wasi:io/error wasi:io/streams wasi:clocks/monotonic-clock wasi:clocks/wall-clock wasi:random/random wasi:cli/stdin wasi:cli/stdout wasi:cli/stderr wasi:http/types wasi:http/outgoing-handler wasi:config/store"
guarded_imports() { for imp in $(instance_imports "$1"); do if in_list "$(base "$imp")" "$GUARDED"; then echo "$imp"; fi; done | sort; }

# The action's exports: the contract's one interface, nothing else.
action_exports=$(exports "$ACTION")
if grep -q '^describe: func' <<<"$action_exports"; then
  fail "$ACTION exports root-level \`describe\`: it targets actionbox:action@0.1.0; rebuild it against wit/ (actionbox:action@0.2.0)"
fi
[ "$(wc -l <<<"$action_exports")" = 1 ] && [ "$(base "$action_exports")" = actionbox:action/action ] ||
  fail "$ACTION exports $(echo $action_exports | sed 's/ /, /g'); an action must export only actionbox:action/action@0.2.0"
# One import per guarded interface: `wac plug` wires one import per export, and a
# second, semver-compatible one would be merged with the adapter's own import of the runtime's.
dups=$(guarded_imports "$ACTION" | while read -r imp; do base "$imp"; done | sort | uniq -d)
[ -z "$dups" ] || fail "$ACTION imports $dups more than once; refused (one of them would bypass the edge adapter)"

# 1. The adapter into the action.
"$WAC" plug --plug "$ADAPTER" "$ACTION" -o "$WORK/action.wasm" ||
  fail "could not plug the edge adapter into $ACTION (does it import wasi:http/outgoing-handler, wasi:config/store or log?)"
# Every guarded import the action had is now the adapter's: what is left of them
# are exactly the adapter's own imports of the runtime's interfaces.
left=$(guarded_imports "$WORK/action.wasm")
[ "$left" = "$(guarded_imports "$ADAPTER")" ] ||
  fail "$ACTION imports $(comm -23 <(echo "$left") <(guarded_imports "$ADAPTER") | tr '\n' ' ')which the edge adapter does not provide at that version; refused (it would reach the runtime's unfiltered interface)"
# 2. The action into the gateway.
"$WAC" plug --plug "$WORK/action.wasm" "$GATEWAY" -o "$WORK/gateway.wasm" ||
  fail "could not plug $ACTION into the edge gateway (does it export actionbox:action/action@0.2.0?)"
# 3. The stubs into everything, for the wasi:cli interfaces Rust std imports.
"$WAC" plug --plug "$STUBS" "$WORK/gateway.wasm" -o "$WORK/composed.wasm" ||
  fail "could not plug the cli stubs into the composition"
"$WASM_TOOLS" validate "$WORK/composed.wasm"

# What the composed component asks of the runtime: proxy world + wasi:config/store, nothing else.
bad=0
for imp in $(instance_imports "$WORK/composed.wasm"); do
  in_list "$(base "$imp")" "$ALLOWED" || { echo "compose.sh: the composed component imports $imp: not allowed" >&2; bad=1; }
done
if world "$WORK/composed.wasm" | grep -Eq '^  (use |import [a-z0-9-]+: )'; then
  echo "compose.sh: the composed component has root-level type or function imports" >&2; bad=1
fi
[ "$(exports "$WORK/composed.wasm")" = "wasi:http/incoming-handler@0.2.12" ] || {
  echo "compose.sh: the composed component exports $(exports "$WORK/composed.wasm" | tr '\n' ' ')instead of wasi:http/incoming-handler@0.2.12 only" >&2; bad=1
}
[ "$bad" = 0 ] || exit 1
mv "$WORK/composed.wasm" "$OUT"
echo "composed $OUT ($(wc -c < "$OUT") bytes)"
