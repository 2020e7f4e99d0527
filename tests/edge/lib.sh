# Shared by tests/edge/e2e.sh and tests/edge/policy.sh (sourced, not run).
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
