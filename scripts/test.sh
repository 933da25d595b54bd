#!/usr/bin/env bash
# test.sh - the whole test suite, on local services it starts itself.
#
# Usage: scripts/test.sh [extra cargo test arguments]
#
# 1. installs what the build and the deployment checks need (scripts/build-deps.sh --test),
# 2. starts PostgreSQL, the Kafka-API broker and an Alertmanager (scripts/services.sh up; the
#    tests start Alertmanagers of their own),
# 3. runs every test: unit tests (property tests with PROPTEST_CASES=10000) and the integration
#    tests under tests/, which use those services,
# 4. runs every SQL query of the Grafana dashboards (deploy/grafana) against the real schema,
# 5. checks the deployment files without Docker: Prometheus's config, alert rules and their unit
#    tests with promtool, Alertmanager's config and routes with amtool, and deploy/docker-compose.yml
#    and its overlays with deploy/check-compose.py (the compose-spec JSON schema, then the project's
#    own policy),
# 6. checks the module graph of src/ (scripts/check-layers.py: no circle of imports, no actor
#    importing another, a pure domain),
# 7. checks that every config key, metric and log line the docs name exists in the code
#    (scripts/check-docs.py),
# 8. checks that src/db/schema.rs is what `diesel print-schema` makes of the migrations,
# 9. checks that docs/SPEC.md is the contract ../shared/SPEC.md, where ../shared exists.
# Ends with `all tests: N passed, M failed` over all of these.
# Exit code: 0 when everything passed, non-zero otherwise. `.ci/run` calls this same script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH="$HOME/.cargo/bin:$PATH"
scripts/build-deps.sh --test
scripts/services.sh up

export PROPTEST_CASES="${PROPTEST_CASES:-10000}"
export HEARTBEAT_TEST_DATABASE_URL="${HEARTBEAT_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
export HEARTBEAT_TEST_BROKERS="${HEARTBEAT_TEST_BROKERS:-127.0.0.1:9092}"

# Release-mode tests: the property tests and end-to-end runs are far faster optimised, and the
# build is shared with `scripts/run.sh`. Doc tests are left out (there are none worth running).
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
cargo test --release --locked --features fault-injection --lib --bins --tests "$@" 2>&1 | tee "$out" || status=$?

# The dashboards' SQL against a migrated database of the real schema.
if [[ $status == 0 ]]; then
    dsn="postgres://postgres:postgres@127.0.0.1:5432/heartbeat"
    bin="${CARGO_TARGET_DIR:-target}/release/heartbeat-pipeline"
    HEARTBEAT__DATABASE__URL="$dsn" "$bin" migrate >/dev/null || status=$?
    python3 deploy/grafana/check-dashboard-sql.py --dsn "$dsn" 2>&1 | tee -a "$out" | tail -n 1 || status=$?
fi

# The deployment files, without Docker. They need no build, so they run even when cargo test
# failed. Each promtool and amtool command counts as one test; check-compose.py counts one per
# check. Counts go to $out as "N passed, M failed" lines for the closing awk.
count() { printf '%d passed, %d failed\n' "$1" "$2" >>"$out"; }
# tool_check PACKAGE TOOL ARGS...: one test, ok when `TOOL ARGS...` exits 0, else FAIL with its
# output. PACKAGE is the Debian package that brings TOOL (scripts/build-deps.sh --test installs it).
tool_check() {
    local package=$1 tool=$2 log=""
    shift 2
    command -v "$tool" >/dev/null 2>&1 || log="$tool not found: scripts/build-deps.sh --test installs it (Debian package $package)"
    if [[ -z $log ]] && log=$("$tool" "$@" 2>&1); then
        printf 'ok    %s %s\n' "$tool" "$*"
        count 1 0
    else
        printf 'FAIL  %s %s\n' "$tool" "$*"
        printf '%s\n' "$log" | sed 's/^/      /'
        count 0 1
        ((status)) || status=1
    fi
}
# prometheus.yml names its rule file relative to itself (alerts.yml), which resolves both here and
# in the container (deploy/prometheus is mounted at /etc/prometheus).
tool_check prometheus promtool check config deploy/prometheus/prometheus.yml
tool_check prometheus promtool check rules deploy/prometheus/alerts.yml
tool_check prometheus promtool test rules deploy/prometheus/alerts.test.yml
# The routes, receivers and inhibit rule of the stack's Alertmanager (amtool of Debian's 0.25, the
# version of prom/alertmanager:v0.25.0 in the compose file).
tool_check prometheus-alertmanager amtool check-config deploy/alertmanager/alertmanager.yml
# The quick start's local Alertmanager (scripts/services.sh).
tool_check prometheus-alertmanager amtool check-config scripts/alertmanager-local.yml
# Where it sends what, resolved from the file alone (amtool config routes test, no server): each
# kind's alert (SPEC section 8) by its severity to the pager or the chat receiver, Prometheus's
# rules (no customer_id) to the operators. One test each.
for route in clinical-pager:HeartRateCriticalLow:critical_low:critical \
        clinical-chat:HeartRateBradycardia:bradycardia:warning \
        clinical-chat:HeartRateTachycardia:tachycardia:warning \
        clinical-pager:HeartRateCriticalHigh:critical_high:critical \
        clinical-chat:HeartRateSpike:spike:warning \
        clinical-chat:HeartRateDeviation:deviation:warning \
        clinical-pager:HeartRateSilent:silent:critical; do
    IFS=: read -r receiver alertname kind severity <<<"$route"
    tool_check prometheus-alertmanager amtool config routes test \
        --config.file=deploy/alertmanager/alertmanager.yml --verify.receivers="$receiver" \
        alertname="$alertname" customer_id=CUST-00042 kind="$kind" severity="$severity" \
        episode=2026-12-02T07:00:00.250Z service=heartbeat-pipeline
done
tool_check prometheus-alertmanager amtool config routes test \
    --config.file=deploy/alertmanager/alertmanager.yml --verify.receivers=operators \
    alertname=HeartbeatNoProcessor job=heartbeat-processor severity=critical stack=heartbeat-compose
tool_check prometheus-alertmanager amtool config routes test \
    --config.file=deploy/alertmanager/alertmanager.yml --verify.receivers=operators \
    alertname=HeartbeatConsumerLagHigh topic=heartbeats severity=warning stack=heartbeat-compose
compose_log=$(python3 deploy/check-compose.py 2>&1) || { ((status)) || status=1; }
printf '%s\n' "$compose_log" | tee -a "$out"
# A checker that died before its count line still counts as one failure.
[[ $(tail -n 1 <<<"$compose_log") =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]] || count 0 1

# The house's layers (docs/ARCHITECTURE.md "Layers"): no circle of imports in src/, no actor importing
# another, a domain that imports nothing else. Three tests, plus a self-test of the checker.
layers_log=$(python3 scripts/check-layers.py --self-test 2>&1) || { ((status)) || status=1; }
printf '%s\n' "$layers_log" | tee -a "$out"
[[ $(tail -n 1 <<<"$layers_log") =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]] || count 0 1

# The docs against the code (scripts/check-docs.py): every config key, metric and log line that
# README.md and docs/ name exists, and OPERATIONS.md's key table is config/default.toml's. Four tests.
docs_log=$(python3 scripts/check-docs.py 2>&1) || { ((status)) || status=1; }
printf '%s\n' "$docs_log" | tee -a "$out"
[[ $(tail -n 1 <<<"$docs_log") =~ ^[0-9]+\ passed,\ [0-9]+\ failed$ ]] || count 0 1

# docs/SPEC.md is a copy of the external contract, ../shared/SPEC.md, shipped with the code: one
# test that the two are identical byte for byte, so the copy cannot drift. Where ../shared does
# not exist (a clone on its own) there is nothing to compare with, and the test is not counted.
if [[ -d ../shared ]]; then
    if spec_log=$(diff -u ../shared/SPEC.md docs/SPEC.md 2>&1); then
        printf 'ok    docs/SPEC.md is identical to ../shared/SPEC.md\n'
        count 1 0
    else
        printf 'FAIL  docs/SPEC.md is identical to ../shared/SPEC.md (copy it over: cp ../shared/SPEC.md docs/)\n'
        printf '%s\n' "$spec_log" | head -n 40 | sed 's/^/      /'
        count 0 1
        ((status)) || status=1
    fi
else
    printf 'skip  docs/SPEC.md against ../shared/SPEC.md: no ../shared here\n'
fi

# src/db/schema.rs is generated, never edited: `diesel print-schema` (diesel.toml's file and filter)
# over a scratch database migrated from migrations/ must give it byte for byte. One test. Needs no
# build, so it runs even when cargo test failed; about 1-2 s.
schema_check() {
    local base=${HEARTBEAT_TEST_DATABASE_URL%/*} db="heartbeat_schema_check_$$" log="" got noconf
    got=$(mktemp)
    noconf=$(mktemp)   # a diesel.toml without [print_schema]: `migration run` must not rewrite schema.rs
    if ! command -v diesel >/dev/null 2>&1; then
        log="diesel not found: scripts/build-deps.sh --test installs diesel_cli"
    elif ! log=$(psql -X -q -w -v ON_ERROR_STOP=1 -d "$base/postgres" \
                     -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>&1 \
            && diesel migration run --database-url "$base/$db" --config-file "$noconf" \
                   --migration-dir migrations 2>&1 \
            && diesel print-schema --database-url "$base/$db" 2>&1 >"$got"); then
        :
    elif ! log=$(diff -u src/db/schema.rs "$got"); then
        log="src/db/schema.rs differs from \`diesel print-schema\` of the migrations (regenerate it, never edit it):
$log"
    else
        log=""
    fi
    psql -X -q -w -d "$base/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -f "$got" "$noconf"
    if [[ -z $log ]]; then
        printf 'ok    src/db/schema.rs is what diesel print-schema makes of the migrations\n'
        count 1 0
    else
        printf 'FAIL  src/db/schema.rs is what diesel print-schema makes of the migrations\n'
        printf '%s\n' "$log" | sed 's/^/      /'
        count 0 1
        ((status)) || status=1
    fi
}
schema_check

# One closing line over every test binary, the dashboard check and the deployment checks.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
     END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0) }' "$out" || status=1
exit "$status"
