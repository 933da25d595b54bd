#!/usr/bin/env bash
# bench.sh - rerunnable throughput figures on the local services.
#
# Usage: scripts/bench.sh throughput [--records N] [--replicas R]
#        scripts/bench.sh latency [--rate R] [--seconds S]
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
exec target/release/heartbeat-bench "$@"
