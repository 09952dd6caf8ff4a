#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against the real server's own OpenAPI
# document, with an admin API key: every operation, examples, coverage,
# fuzzing and stateful phases, positive and negative cases, and every check
# but one (no 5xx, answers and headers that match the schema, bad input
# refused, wrong methods answered 405 with Allow, auth enforced). Left out:
# "schema-valid input accepted", because the schema cannot state rules
# across fields (a message needs `text` or `mediaId`) or about the store
# (an `assigneeId` must name a user); docs/api.md says so. Prints the
# operations and cases it ran.
#
# Usage: tests/schemathesis/run.sh [max examples per operation, default 25]
set -euo pipefail
cd "$(dirname "$0")/../.."
examples="${1:-25}"
bin="${UTALK_BIN:-${CARGO_TARGET_DIR:-target}/debug/utalk}"
[ -x "$bin" ] || { echo "schemathesis: no server binary at $bin (cargo build first, or set UTALK_BIN)" >&2; exit 1; }
venv="$HOME/.cache/utalk/schemathesis-4.32.5"
if [ ! -x "$venv/bin/st" ]; then
  echo "installing schemathesis 4.32.5 into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi

work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
data="$work/data"
password="a-long-admin-password"
printf '%s\n' "$password" | env -u UTALK_BIN "$bin" user add --data-dir "$data" --email admin@example.com --role admin --password-stdin >/dev/null
# Generous limits: schemathesis is one fast client, not an abuse to throttle.
env -u UTALK_BIN UTALK_HTTP__REQUESTS_PER_MINUTE=1000000 UTALK_AUTH__MAX_FAILURES_PER_IP=1000000 UTALK_LOG=info \
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" >"$work/server.log" 2>&1 &
pid=$!
base=""
for _ in $(seq 1 600); do
  base="$(grep -o '"addr":"[^"]*"' "$work/server.log" | head -1 | cut -d'"' -f4 || true)"
  [ -n "$base" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$base" ] || { echo "schemathesis: the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }
base="http://$base"
token="$(curl -sf "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"admin@example.com\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')"
key="$(curl -sf "$base/api/v1/api-keys" -H "authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"name":"schemathesis","role":"admin"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

# Operations that would end the run's own access or are not the API's to
# fuzz: revoking keys (it may revoke its own), Twilio's signed webhooks
# (refused without Twilio's signature, which is their whole point).
# From the scratch directory: schemathesis keeps a cache where it runs.
cd "$work"
status=0
"$venv/bin/st" run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples "$examples" \
  --workers 1 \
  --seed 1 \
  --exclude-path-regex '^/api/v1/api-keys/\{id\}$' \
  --exclude-path-regex '^/webhooks/twilio/' \
  --request-timeout 20 \
  --warnings off || status=$?
# A 500 names a request id; the server's own account of it is in its log,
# which goes with the scratch directory: print its errors before it does.
if [ "$status" -ne 0 ]; then
  echo "schemathesis: the server's errors and warnings during the run:" >&2
  grep -E '"level":"(ERROR|WARN)"' "$work/server.log" | tail -n 50 >&2 || true
fi
exit "$status"
