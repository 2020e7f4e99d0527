#!/usr/bin/env bash
# Compose one smart action with the edge gateway, adapter and cli-stubs into a
# single wasi:http/proxy component, then check what it imports.
#
#   guest/edge/compose.sh ACTION.wasm OUT.wasm      (make edge: target/edge/edge-shipstation.wasm)
#
# Needs the three edge components built for wasm32-wasip2 (EDGE_WASM_DIR,
# default target/wasm32-wasip2/release) and wasm-tools + wac (WASM_TOOLS, WAC,
# default target/tools/bin, installed by `make edge-tools`).
#
# The WAC is generated from what each component really imports (wit-component
# drops unused imports: an action that never logs has no `log` import, and Rust
# std's adapter imports vary by toolchain), with explicit wiring instead of
# `...spread` arguments: wac's spreads match `wasi:cli/environment@0.2.12`
# semver-compatibly to every `environment` import, which would give the adapter
# and gateway the empty stub environment. Rules:
#   action  wasi:http/outgoing-handler, actionbox:action/{settings,log,types},
#           the world's root type imports (manifest, call-context, action-error) -> adapter
#   action  wasi:cli/environment (holds the key!), exit, terminal-*       -> cli-stubs (empty / none)
#   adapter, gateway  wasi:cli/exit, terminal-*                            -> cli-stubs
#   gateway describe, invoke -> action; its types -> adapter
#   everything else -> imported from the runtime (`...`), then checked against
#   the proxy world + wasi:cli/environment.
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
for f in "$ACTION" "$R/edge_gateway.wasm" "$R/edge_adapter.wasm" "$R/edge_cli_stubs.wasm"; do
  [ -f "$f" ] || { echo "compose.sh: $f is missing: run \`make edge\`" >&2; exit 1; }
done
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# `import X;` lines of a component's root world (instances only).
instance_imports() { "$WASM_TOOLS" component wit "$1" | sed -n '/^world root {/,/^}/p' | sed -n 's/^  import \([a-z0-9:/@.-]*\);$/\1/p'; }
# Root-level type imports from a world-level `use a:b/c@v.{x, y};`.
root_types() { "$WASM_TOOLS" component wit "$1" | sed -n '/^world root {/,/^}/p' | sed -n 's/^  use \([^ ]*\)\.{\(.*\)};$/\1 \2/p'; }
# instance name without version: wasi:cli/exit@0.2.6 -> wasi:cli/exit
base() { echo "${1%@*}"; }

STUBBED="wasi:cli/exit wasi:cli/terminal-input wasi:cli/terminal-output wasi:cli/terminal-stdin wasi:cli/terminal-stdout wasi:cli/terminal-stderr"
# What an edge runtime provides: the wasi:http/proxy world, plus environment (configuration).
ALLOWED="wasi:io/poll wasi:io/error wasi:io/streams wasi:clocks/monotonic-clock wasi:clocks/wall-clock wasi:random/random wasi:cli/stdin wasi:cli/stdout wasi:cli/stderr wasi:http/types wasi:http/outgoing-handler wasi:cli/environment"
in_list() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

stub_args() { # component
  for imp in $(instance_imports "$1"); do
    if in_list "$(base "$imp")" "$STUBBED"; then echo "    \"$imp\": stubs[\"$(base "$imp")@0.2.12\"],"; fi
  done
}
type_args() { # component: root types -> adapter's types instance
  root_types "$1" | while read -r iface names; do
    [ "$iface" = "actionbox:action/types@0.1.0" ] || { echo "unexpected root types from $iface" >&2; exit 1; }
    for n in ${names//,/ }; do echo "    \"$n\": adapter[\"actionbox:action/types@0.1.0\"][\"$n\"],"; done
  done
}

{
  echo "package actionbox:edge-composed;"
  echo "let stubs = new actionbox:cli-stubs {};"
  echo "let adapter = new actionbox:adapter {"
  stub_args "$R/edge_adapter.wasm"
  echo "    ..."
  echo "};"
  echo "let action = new actionbox:action {"
  for imp in $(instance_imports "$ACTION"); do
    b=$(base "$imp")
    case "$b" in
      wasi:http/outgoing-handler) echo "    \"$imp\": adapter[\"wasi:http/outgoing-handler@0.2.12\"]," ;;
      actionbox:action/settings | actionbox:action/log | actionbox:action/types) echo "    \"$imp\": adapter[\"$b@0.1.0\"]," ;;
      wasi:cli/environment) echo "    \"$imp\": stubs[\"wasi:cli/environment@0.2.12\"]," ;;
      actionbox:*) echo "the action imports $imp, which the edge adapter does not provide" >&2; exit 1 ;;
      *) if in_list "$b" "$STUBBED"; then echo "    \"$imp\": stubs[\"$b@0.2.12\"],";
         elif ! in_list "$b" "$ALLOWED"; then echo "the action imports $imp: not in wasi:http/proxy, refused for the edge build" >&2; exit 1; fi ;;
    esac
  done
  type_args "$ACTION"
  echo "    ..."
  echo "};"
  echo "let gateway = new actionbox:gateway {"
  echo "    describe: action.describe,"
  echo "    invoke: action.invoke,"
  echo "    \"actionbox:action/types@0.1.0\": adapter[\"actionbox:action/types@0.1.0\"],"
  type_args "$R/edge_gateway.wasm"
  stub_args "$R/edge_gateway.wasm"
  echo "    ..."
  echo "};"
  echo "export gateway[\"wasi:http/incoming-handler@0.2.12\"];"
} > "$WORK/compose.wac"
cp "$WORK/compose.wac" "${OUT%.wasm}.wac"

"$WAC" compose "$WORK/compose.wac" \
  --dep actionbox:cli-stubs="$R/edge_cli_stubs.wasm" \
  --dep actionbox:adapter="$R/edge_adapter.wasm" \
  --dep actionbox:action="$ACTION" \
  --dep actionbox:gateway="$R/edge_gateway.wasm" \
  -o "$OUT"
"$WASM_TOOLS" validate "$OUT"

# What the composed component asks of the runtime: proxy world + environment, nothing else.
bad=0
for imp in $(instance_imports "$OUT"); do
  in_list "$(base "$imp")" "$ALLOWED" || { echo "composed component imports $imp: not allowed" >&2; bad=1; }
done
if "$WASM_TOOLS" component wit "$OUT" | sed -n '/^world root {/,/^}/p' | grep -Eq '^  (use |import [a-z0-9-]+: )'; then
  echo "composed component has root-level type or function imports" >&2; bad=1
fi
[ "$bad" = 0 ] || exit 1
echo "composed $OUT ($(wc -c < "$OUT") bytes); WAC in ${OUT%.wasm}.wac"
