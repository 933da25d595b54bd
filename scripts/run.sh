#!/usr/bin/env bash
# run.sh - see the pipeline work: local services, the daemon with generator and processor on.
#
# Usage: scripts/run.sh [extra arguments for `heartbeat-pipeline run`]
#
# Installs what the build needs, starts PostgreSQL, the Kafka-API broker and an Alertmanager on
# loopback (scripts/services.sh up), builds the release binary, and runs `heartbeat-pipeline
# run`: the Generator publishes simulated readings, the processor stores them and delivers every
# activated alert episode to that Alertmanager and to the topic heartbeat-alerts, and a progress
# line every 10 s shows the counts. Meanwhile, in another terminal:
#   target/release/heartbeat-pipeline inspect          database summary
#   target/release/heartbeat-pipeline tail             the readings as they arrive
#   target/release/heartbeat-pipeline tail --topic heartbeat-alerts
#                                                      episode events: activated, resolved
#   amtool --alertmanager.url http://127.0.0.1:9093 alert query
#                                                      the alerts the Alertmanager holds
#   curl -s localhost:9898/metrics | grep ^heartbeat_  metrics
# A healthy simulated fleet activates few alerts: the first may take minutes. Debian's
# Alertmanager has no web UI (http://127.0.0.1:9093 serves a page saying so, and its API);
# .local/alertmanager.log has a line per alert it receives. Its configuration is
# scripts/alertmanager-local.yml (a receiver that notifies nobody); docs/OPERATIONS.md, "Alert
# delivery: routing" and "Silences and acknowledgement", shows what to do with it.
# HEARTBEAT__ALERTS__ALERTMANAGER__URLS is set to that Alertmanager unless the caller set it
# (empty: deliver to none); being an environment variable, it wins over a --config file's urls.
# Ctrl-C stops it gracefully (in-flight work is stored and committed first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PATH="$HOME/.cargo/bin:$PATH"
scripts/build-deps.sh
scripts/services.sh up
am_url="http://127.0.0.1:${HEARTBEAT_ALERTMANAGER_PORT:-9093}"   # the one services.sh started
export HEARTBEAT__ALERTS__ALERTMANAGER__URLS="${HEARTBEAT__ALERTS__ALERTMANAGER__URLS-$am_url}"
cargo build --release --locked --bin heartbeat-pipeline
exec target/release/heartbeat-pipeline run "$@"
