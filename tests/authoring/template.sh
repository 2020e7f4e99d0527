#!/usr/bin/env bash
# Generates one language's project with `actionbox new` and runs the
# project's own `make test` in it (build, `actionbox check`, the replayed
# recordings), exactly as its author would.
#
#   tests/authoring/template.sh LANG DIR [MAKE VARIABLE=VALUE ...]
#
# The project is generated afresh every time; when it is identical to the one
# already in DIR (ignoring what building made: build/, node_modules/, .venv/,
# __pycache__/, target/), the old one is kept, so an unchanged template is not rebuilt
# (componentize-py's output is not byte-reproducible, and every new component
# costs the host a fresh compilation). Environment: ACTIONBOX, the actionbox
# binary (default: the one on PATH), passed to the project's Makefile too.
set -euo pipefail

lang=${1:?usage: template.sh LANG DIR [VAR=VALUE ...]}
dir=${2:?usage: template.sh LANG DIR [VAR=VALUE ...]}
shift 2
actionbox=${ACTIONBOX:-actionbox}
# make -C runs the project's Makefile from DIR: a relative path must not break.
case $actionbox in */*) actionbox="$(cd "$(dirname "$actionbox")" && pwd)/$(basename "$actionbox")" ;; esac

fresh="$dir.new"
rm -rf "$fresh"
mkdir -p "$(dirname "$dir")"
"$actionbox" new "hello-$lang" --lang "$lang" --dir "$fresh" > /dev/null
if [ -d "$dir" ] && diff -rq -x build -x node_modules -x .venv -x target -x __pycache__ "$fresh" "$dir" > /dev/null; then
    echo "template $lang: unchanged since the last run; keeping $dir and its build"
    rm -rf "$fresh"
else
    rm -rf "$dir"
    mv "$fresh" "$dir"
fi
make -C "$dir" --no-print-directory test ACTIONBOX="$actionbox" "$@"
