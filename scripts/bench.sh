#!/usr/bin/env bash
# bench.sh - rerunnable throughput figures on the local services.
#
# Usage: scripts/bench.sh throughput [--records N] [--replicas R] [--peer]
#        scripts/bench.sh latency [--rate R] [--seconds S] [--linger-ms L]
#        scripts/bench.sh poison [--records N] [--poison-percent P] [--rounds R]
#        scripts/bench.sh quality [--records N] [--customers C] [--rate R] [--seed S]
#
# Builds the release binaries, starts PostgreSQL and the broker (scripts/services.sh up) and
# runs target/release/heartbeat-bench with the given arguments. Figures go to stdout.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/build-deps.sh
scripts/services.sh up >&2
cargo build --release --locked --bins >&2
# The Python peer of `throughput --peer` (scripts/peer-consumer.py) runs in the broker's venv.
if [[ " $* " == *" --peer "* ]]; then
    .local/venv/bin/python -c 'import confluent_kafka, psycopg2' 2>/dev/null \
        || .local/venv/bin/pip install -q confluent-kafka psycopg2-binary >&2
fi
exec target/release/heartbeat-bench "$@"
