#!/usr/bin/env bash
# test.sh - the whole test suite, on local services it starts itself.
#
# Usage: scripts/test.sh [extra cargo test arguments]
#
# 1. installs what the build needs (scripts/build-deps.sh),
# 2. starts PostgreSQL and the Kafka-API broker (scripts/services.sh up),
# 3. runs every test: unit tests (property tests with PROPTEST_CASES=10000) and the integration
#    tests under tests/, which use those services,
# 4. runs every SQL query of the Grafana dashboards (deploy/grafana) against the real schema.
# Exit code: cargo test's. `.ci/run` calls this same script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH="$HOME/.cargo/bin:$PATH"
scripts/build-deps.sh
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

# One closing line over every test binary and the dashboard check.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
     END { printf "all tests: %d passed, %d failed\n", p, f; exit (f > 0) }' "$out" || status=1
exit "$status"
