#!/usr/bin/env bash
# Runs the README's "First steps" commands as a new user would, from a clean
# clone of this repository: the `scripts/utalk user add` example, then
# `scripts/serve` (on a free port, passed the documented way: UTALK_LISTEN)
# until /health answers, then the login `curl` example, which must return
# tokens. A change that breaks a command the README shows fails here.
#
# The clone is of the committed state (HEAD); uncommitted changes are not in it.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
readme="$repo/README.md"

# The one fenced sh block under "## First steps", continuation lines joined.
block="$(awk '
  /^## / { in_section = ($0 == "## First steps") }
  in_section && /^```sh$/ { in_block = 1; next }
  in_block && /^```$/ { exit }
  in_block { print }
' "$readme" | sed -e ':a' -e '/\\$/N; s/\\\n[[:space:]]*/ /; ta')"
if [ -z "$block" ]; then
  echo "readme: no sh block under '## First steps' in README.md" >&2
  exit 1
fi
grep -qx 'scripts/serve' <<<"$block" || { echo "readme: 'First steps' no longer starts the server with scripts/serve" >&2; exit 1; }

# A fixed place, so that repeated runs do not fill the build cache with a
# copy of the crates per temporary path.
clone="${UTALK_README_CLONE:-$HOME/.cache/utalk/readme-clone}"
rm -rf "$clone"
git clone --quiet "$repo" "$clone"
cd "$clone"
if [ -n "$(git -C "$repo" status --porcelain)" ]; then
  echo "readme: note: the working tree has uncommitted changes; this checks HEAD"
fi

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
server_pid=""
log="$clone/serve.log"
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
}
trap stop_server EXIT

n=0
while IFS= read -r cmd; do
  [ -z "$cmd" ] && continue
  n=$((n + 1))
  started=$(date +%s)
  if [ "$cmd" = "scripts/serve" ]; then
    echo "readme: [$n] UTALK_LISTEN=127.0.0.1:$port $cmd"
    UTALK_LISTEN="127.0.0.1:$port" scripts/serve </dev/null >"$log" 2>&1 &
    server_pid=$!
    # The release build happened in the step before; allow a slow machine anyway.
    for _ in $(seq 1 1800); do
      if curl -fsS "127.0.0.1:$port/health" >/dev/null 2>&1; then break; fi
      if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "readme: scripts/serve exited before /health answered:" >&2
        tail -n 40 "$log" >&2
        exit 1
      fi
      sleep 1
    done
    curl -fsS "127.0.0.1:$port/health" >/dev/null || { echo "readme: /health did not answer" >&2; tail -n 40 "$log" >&2; exit 1; }
  else
    run="${cmd//localhost:8080/localhost:$port}"
    echo "readme: [$n] $run"
    out="$(bash -c "set -euo pipefail; $run" </dev/null 2>"$clone/step-$n.err")" || {
      echo "readme: command $n failed:" >&2
      tail -n 40 "$clone/step-$n.err" >&2
      exit 1
    }
    case "$cmd" in
      curl*auth/login*)
        grep -q '"accessToken"' <<<"$out" || { echo "readme: login answered without a token: $out" >&2; exit 1; }
        ;;
    esac
  fi
  echo "readme: [$n] ok in $(( $(date +%s) - started )) s"
done <<<"$block"

[ -n "$server_pid" ] || { echo "readme: the server was never started" >&2; exit 1; }
# The pages the README points at, from the release build a user runs.
for page in /app/ /widget.js; do
  curl -fsS "127.0.0.1:$port$page" >/dev/null || { echo "readme: $page does not answer" >&2; exit 1; }
done
echo "readme: every First steps command works, and /app/ and /widget.js answer"
