#!/usr/bin/env bash
# Checks the Alertmanager configuration: `amtool check-config`, then, for
# every alert rule of ops/prometheus/utalk-rules.yml and utalk-slo.yml, `amtool config routes
# test` with the labels the alert fires with, against the receivers
# routes.test expects for it. Fails on a route that reaches other receivers,
# on a rule without a line in routes.test, and on a line whose alert no rule
# fires any more. Needs amtool (Debian: prometheus-alertmanager).
#
#   ops/alertmanager/test-routes.sh [alertmanager.yml ["rules.yml ..." [routes.test]]]
set -euo pipefail
cd "$(dirname "$0")/../.."
config=${1:-ops/alertmanager/alertmanager.yml}
rules=${2:-ops/prometheus/utalk-rules.yml ops/prometheus/utalk-slo.yml}
expected=${3:-ops/alertmanager/routes.test}

# One line per alert rule: its name, then its static labels as label=value.
rule_labels() {
  if python3 -c 'import yaml' >/dev/null 2>&1; then
    python3 - "$1" <<'PY'
import sys, yaml
with open(sys.argv[1]) as f:
    doc = yaml.safe_load(f)
for group in doc.get("groups") or []:
    for rule in group.get("rules") or []:
        if "alert" not in rule:
            continue
        labels = [f"{k}={v}" for k, v in (rule.get("labels") or {}).items()]
        print(" ".join([rule["alert"], *labels]))
PY
  else
    # Without PyYAML: the rules file's block style (`- alert: Name`, then a
    # `labels:` block of `key: value` lines, more indented than `labels:`).
    awk '
      function flush() { if (name != "") print name labels; name = ""; labels = ""; inlabels = 0 }
      /^[[:space:]]*- (alert|record|name):/ { flush() }
      /^[[:space:]]*- alert:/ {
        name = $0; sub(/^[[:space:]]*- alert:[[:space:]]*/, "", name)
        sub(/[[:space:]]+#.*$/, "", name); gsub(/^["\047]|["\047]$/, "", name); next
      }
      name != "" && /^[[:space:]]*labels:/ {
        if ($0 !~ /^[[:space:]]*labels:[[:space:]]*(#.*)?$/) { print "cannot read the labels of " name ": " $0 > "/dev/stderr"; bad = 1 }
        match($0, /^[[:space:]]*/); indent = RLENGTH; inlabels = 1; next
      }
      inlabels {
        if ($0 ~ /^[[:space:]]*(#.*)?$/) next
        match($0, /^[[:space:]]*/)
        if (RLENGTH <= indent) { inlabels = 0; next }
        line = $0; sub(/^[[:space:]]+/, "", line)
        key = line; sub(/[[:space:]]*:.*$/, "", key)
        value = line; sub(/^[^:]*:[[:space:]]*/, "", value)
        sub(/[[:space:]]+#.*$/, "", value); gsub(/^["\047]|["\047]$/, "", value)
        labels = labels " " key "=" value
      }
      END { flush(); exit bad }
    ' "$1"
  fi
}

amtool check-config "$config"
echo

declare -A want extra
declare -a free_receivers=() free_labels=()
while read -r name receivers labels; do
  case "$name" in ''|'#'*) continue ;; esac
  if [ -z "$receivers" ]; then
    echo "FAIL $expected: $name names no receivers" >&2; exit 1
  fi
  if [ "$name" = "-" ]; then
    free_receivers+=("$receivers"); free_labels+=("$labels")
  elif [ -n "${want[$name]+x}" ]; then
    echo "FAIL $expected names $name twice" >&2; exit 1
  else
    want[$name]=$receivers; extra[$name]=$labels
  fi
done < "$expected"

failures=0 tested=0
declare -A seen

# Runs one route test: receivers, then the labels.
route_test() {
  local receivers=$1 out rc=0; shift
  tested=$((tested + 1))
  out=$(amtool config routes test --config.file="$config" --verify.receivers="$receivers" "$@" 2>&1) || rc=$?
  out=$(grep -v 'flag overrides the --alertmanager.url' <<<"$out" | grep -v '^WARNING: Expected receivers' || true)
  if [ "$rc" -eq 0 ]; then
    echo "ok   $* -> $receivers"
  else
    echo "FAIL $* -> expected $receivers, routed to ${out:-nothing}"
    failures=$((failures + 1))
  fi
}

rules_out=$(for r in $rules; do rule_labels "$r"; done)
[ -n "$rules_out" ] || { echo "FAIL no alert rules found in $rules" >&2; exit 1; }
while read -r name labels; do
  seen[$name]=1
  if [ -z "${want[$name]+x}" ]; then
    echo "FAIL $name (in $rules) has no line in $expected: say which receivers it must reach"
    failures=$((failures + 1))
    continue
  fi
  for l in ${extra[$name]}; do
    case " $labels " in *" ${l%%=*}="*)
      echo "FAIL $expected gives $name the label ${l%%=*}, which its rule sets already"
      failures=$((failures + 1)); continue 2 ;;
    esac
  done
  # shellcheck disable=SC2086 # label=value words, no spaces inside
  route_test "${want[$name]}" "alertname=$name" $labels ${extra[$name]}
done <<<"$rules_out"

for name in "${!want[@]}"; do
  if [ -z "${seen[$name]+x}" ]; then
    echo "FAIL $expected expects $name, which no rule in $rules fires any more"
    failures=$((failures + 1))
  fi
done

for i in "${!free_receivers[@]}"; do
  # shellcheck disable=SC2086
  route_test "${free_receivers[$i]}" ${free_labels[$i]}
done

echo
if [ "$failures" -gt 0 ]; then
  echo "$failures of the routing checks failed ($tested route tests run)"
  exit 1
fi
echo "every alert rule routes as expected ($tested route tests)"
