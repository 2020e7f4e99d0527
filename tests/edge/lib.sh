# Shared by tests/edge/{e2e,policy,refusals}.sh (sourced, not run).
#
# Every process is started in its own session (setsid), so its whole tree is
# stopped by process-group id; nothing listens on anything but 127.0.0.1; the
# simulator's API key is random per run, travels in environment variables only
# (never argv), and is redacted from anything these scripts print.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Absolute path of an existing file, or a clear failure naming what builds it.
need_file() { # path, what-makes-it
  [ -f "$1" ] || { echo "missing $1: $2" >&2; exit 1; }
  realpath "$1"
}

dir=$(mktemp -d "${TMPDIR:-/tmp}/actionbox-edge.XXXXXX")
pgids=()
cleanup() {
  local p
  for p in "${pgids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${pgids[@]}"; do
    for _ in $(seq 20); do kill -0 -- "-$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
umask 077

# 48 hex characters from the kernel's CSPRNG.
random_hex() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
key=TEST_edge_$(random_hex)

# Anything shown to the user goes through this: the key never reaches the terminal.
redact() { sed "s/$key/[redacted]/g"; }

# Start a command in its own session and process group; records the group.
# Its environment is PATH, HOME and TMPDIR plus the NAME=VALUE pairs given
# (exported, so values such as the key never appear in any argv); its stdin is
# /dev/null (CI, no terminal). Sets $started to its pid (= its process group).
spawn() { # log-file [NAME=VALUE...] -- command...
  local log=$1; shift
  (
    for v in $(compgen -e); do
      case "$v" in PATH | HOME | TMPDIR) ;; *) unset "$v" 2>/dev/null || true ;; esac
    done
    while [ "$1" != -- ]; do export "${1?}"; shift; done
    shift
    exec setsid "$@" </dev/null >"$log" 2>&1
  ) &
  started=$!
  pgids+=("$started")
}

# Stop one group started by spawn.
stop_group() { # pgid
  kill -TERM -- "-$1" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 -- "-$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Wait for a file a process writes once it listens (URL files); fail clearly.
wait_for_file() { # path, pid, what, log
  for _ in $(seq 300); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "$3 did not start; last lines of its log:" >&2
  tail -n 20 "$4" | redact >&2
  exit 1
}

# The ShipStation simulator on a free 127.0.0.1 port; sets $base.
start_simulator() { # simulator-binary
  spawn "$dir/sim.log" SHIPSTATION_SIM_API_KEY="$key" -- "$1" --port 0 --url-file "$dir/sim.url"
  wait_for_file "$dir/sim.url" "$started" "shipstation-sim" "$dir/sim.log"
  base=$(cat "$dir/sim.url")
  case "$base" in http://127.0.0.1:*) ;; *) echo "the simulator is not on 127.0.0.1: $base" >&2; exit 1 ;; esac
}

# A free TCP port on 127.0.0.1 (for runtimes that cannot report the one they bound).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Microseconds now, and seconds since such a moment (no bc needed).
now_us() { echo "${EPOCHREALTIME//[.,]/}"; }
since() { local d=$(( $(now_us) - $1 )); printf '%d.%02d' $((d / 1000000)) $((d % 1000000 / 10000)); }

fail=0
check() { # name, shell condition
  if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi
}

# Serve a composed component on 127.0.0.1 with edge-serve (EDGE_SERVE) or
# `jco serve` (JCO), configured by the given ACTIONBOX_* variables (both
# runtimes turn them into wasi:config/store keys: lower-cased names), and wait
# until /healthz answers. Sets $url, $rt (its process group) and $log.
runs=0
start_runtime() { # serve|jco, composed.wasm, NAME=VALUE...
  local runtime=$1 composed=$2 t0; shift 2
  t0=$(now_us)
  runs=$((runs + 1))
  log="$dir/rt-$runs.log"
  case "$runtime" in
    serve)
      spawn "$log" "$@" -- "$EDGE_SERVE" "$composed" --listen 127.0.0.1:0 --url-file "$dir/rt-$runs.url"
      rt=$started
      wait_for_file "$dir/rt-$runs.url" "$rt" "edge-serve" "$log"
      url=$(cat "$dir/rt-$runs.url")
      ;;
    jco)
      # jco serve cannot report the port it bound: pick a free one, retry if it was taken meanwhile.
      # It has no wasi:config/store of its own: tests/edge/jco-config.mjs adds one.
      local attempt port
      for attempt in 1 2 3; do
        port=$(free_port)
        spawn "$log" "$@" -- "$JCO" serve --host 127.0.0.1 --port "$port" \
          --isolate-requests instance --jco-import "$ROOT/tests/edge/jco-config.mjs" \
          --jco-dir "$dir/jco-$runs-$attempt" "$composed"
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
    *) echo "unknown runtime $runtime (serve or jco)" >&2; exit 2 ;;
  esac
  case "$url" in http://127.0.0.1:*) ;; *) echo "$runtime is not on 127.0.0.1: $url" >&2; exit 1 ;; esac
  for _ in $(seq 600); do
    curl -sf --max-time 2 -o /dev/null "$url/healthz" && break
    kill -0 "$rt" 2>/dev/null || break
    sleep 0.1
  done
  if ! curl -sf --max-time 2 -o /dev/null "$url/healthz"; then
    echo "$runtime did not become healthy at $url; last lines of its log:" >&2
    tail -n 20 "$log" | redact >&2
    exit 1
  fi
  echo "$runtime ready in $(since "$t0")s at $url"
}

# The runtime binary a test needs, or a clear failure.
need_runtime() { # serve|jco
  case "$1" in
    serve) EDGE_SERVE=$(need_file "${EDGE_SERVE:-$ROOT/target/release/edge-serve}" "run \`cargo build --release -p edge-serve\`") ;;
    jco)   JCO=$(need_file "${JCO:-$ROOT/tests/jco/node_modules/.bin/jco}" "run \`cd tests/jco && npm ci\`")
           command -v node >/dev/null || { echo "jco serve needs Node.js >= 20 on PATH" >&2; exit 1; } ;;
    *) echo "unknown runtime $1 (serve or jco)" >&2; exit 2 ;;
  esac
}
