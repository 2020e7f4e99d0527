#!/usr/bin/env bash
# Runs a document's walkthrough as written: every fenced block opened with
# exactly "```sh {test}", in order, in ONE bash shell (so `cd` and `export`
# carry over from block to block, as they would for a reader typing them),
# with -e, -u, -o pipefail and -x. Blocks opened any other way (```sh, ```wit,
# ...) are for reading only. Jobs a block starts in the background are killed
# when the walkthrough ends, however it ends.
#
#   tests/authoring/walkthrough.sh DOC.md WORKDIR
#
# WORKDIR is emptied first and is where the walkthrough starts; the script it
# runs is kept next to it (WORKDIR.sh) to rerun by hand. Environment:
# ACTIONBOX, the actionbox binary to put first on PATH (default: the one on
# PATH); anything else (e.g. CARGO_TARGET_DIR) is passed through.
set -euo pipefail

doc=${1:?usage: walkthrough.sh DOC.md WORKDIR}
workdir=${2:?usage: walkthrough.sh DOC.md WORKDIR}
[ -f "$doc" ] || { echo "walkthrough: no such document: $doc" >&2; exit 2; }

blocks=$(grep -c '^```sh {test}$' "$doc" || true)
if [ "$blocks" -eq 0 ]; then
    echo "walkthrough: $doc has no \`\`\`sh {test} block; nothing would be tested" >&2
    exit 1
fi

script="$workdir.sh"
rm -rf "$workdir"
mkdir -p "$workdir"
{
    echo "# Generated from $doc by tests/authoring/walkthrough.sh: its $blocks \`\`\`sh {test} blocks."
    echo 'set -euo pipefail'
    echo "trap 'kill \$(jobs -p) 2>/dev/null || true' EXIT"
    echo 'set -x'
    awk -v doc="$doc" '
        /^```sh \{test\}$/ { inside = 1; n++; print ": \"== " doc ", test block " n " (line " NR ")\""; next }
        /^```/ && inside   { inside = 0; next }
        inside             { print }
    ' "$doc"
} > "$script"

if [ -n "${ACTIONBOX:-}" ]; then
    PATH="$(cd "$(dirname "$ACTIONBOX")" && pwd):$PATH"
    export PATH
fi
command -v actionbox >/dev/null || { echo "walkthrough: no actionbox on PATH (set ACTIONBOX)" >&2; exit 2; }

script=$(cd "$(dirname "$script")" && pwd)/$(basename "$script")
cd "$workdir"
bash "$script"
echo "walkthrough: all $blocks test blocks of $doc passed"
