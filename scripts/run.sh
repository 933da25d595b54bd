#!/usr/bin/env bash
# run.sh - see the pipeline work: local services, the daemon with generator and processor on.
#
# Usage: scripts/run.sh [extra arguments for `heartbeat-pipeline run`]
#
# Installs what the build needs, starts PostgreSQL and the Kafka-API broker on loopback
# (scripts/services.sh up), builds the release binary, and runs `heartbeat-pipeline run`: the
# Generator publishes simulated readings, the processor stores them, and a progress line every
# 10 s shows the counts. Meanwhile, in another terminal:
#   target/release/heartbeat-pipeline inspect          database summary
#   target/release/heartbeat-pipeline tail             the readings as they arrive
#   curl -s localhost:9898/metrics | grep ^heartbeat_  metrics
# Ctrl-C stops it gracefully (in-flight work is stored and committed first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH="$HOME/.cargo/bin:$PATH"
scripts/build-deps.sh
scripts/services.sh up
cargo build --release --locked --bin heartbeat-pipeline
exec target/release/heartbeat-pipeline run "$@"
