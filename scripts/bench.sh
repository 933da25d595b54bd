#!/usr/bin/env bash
# bench.sh - rerunnable throughput figures on the local services.
#
# Usage: scripts/bench.sh throughput [--records N] [--replicas R] [--customers C] [--peer] [--rounds K]
#        scripts/bench.sh restart [--records N] [--customers C]
#        scripts/bench.sh latency [--rate R] [--seconds S] [--linger-ms L]
#        scripts/bench.sh poison [--records N] [--poison-percent P] [--rounds R]
#        scripts/bench.sh formats [--records N] [--rounds R]
#        scripts/bench.sh quality [--offline | --compare] [--seeds 1-10] [--customers C]
#            [--interval-s S] [--days D | --minutes M] [--activity on|off] [--config FILE] [--threads T]
#        scripts/bench.sh delivery [--rate R] [--seconds S] [--triggers T]
#        scripts/bench.sh delivery --throughput [--records N] [--rounds K] [--storm]
#        scripts/bench.sh chaos [--records N] [--seeds S1,S2,...]
#        scripts/bench.sh many-days [--days D]
#        scripts/bench.sh retention [--rows N]
#
# Builds the release binaries, starts the local services (scripts/services.sh up) and
# runs target/release/heartbeat-bench with the given arguments. Figures go to stdout.
#
# `chaos` is the long version of the test `chaos::after_kills_rebalances_and_outages_...`
# (tests/it/chaos.rs; scripts/test.sh runs it at 40,000 records): by default 202,100 records of
# 2,000 customers (1% faults, so at least 200,000 readings), once per seed (1 to 5), each printing
# its seed, the faults applied, the time taken and whether the tables equal those of a clean run.
# Exit 1 if any seed differs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/build-deps.sh
scripts/services.sh up >&2
if [[ ${1:-} == chaos ]]; then
    shift
    records=202100
    seeds="1 2 3 4 5"
    while (($#)); do
        case $1 in
            --records) records=$2; shift 2 ;;
            --seeds) seeds=${2//,/ }; shift 2 ;;
            *) printf 'usage: scripts/bench.sh chaos [--records N] [--seeds S1,S2,...]\n' >&2; exit 2 ;;
        esac
    done
    export HEARTBEAT_TEST_DATABASE_URL="${HEARTBEAT_TEST_DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
    export HEARTBEAT_TEST_BROKERS="${HEARTBEAT_TEST_BROKERS:-127.0.0.1:9092}"
    test_args=(--release --locked --features fault-injection --test it)
    cargo test "${test_args[@]}" --no-run >&2
    status=0
    for seed in $seeds; do
        started=$SECONDS
        HEARTBEAT_CHAOS_RECORDS=$records HEARTBEAT_CHAOS_CUSTOMERS=2000 HEARTBEAT_CHAOS_SEED=$seed \
            cargo test "${test_args[@]}" chaos::after_kills -- --nocapture >.local/chaos-$seed.log 2>&1 \
            || status=1
        grep -E '^\[chaos\]|^      (clean|chaos) only' ".local/chaos-$seed.log" || true
        printf '[chaos] seed %s: %s in %d s (full log .local/chaos-%s.log)\n' "$seed" \
            "$(grep -q '^test result: ok' ".local/chaos-$seed.log" && echo passed || echo FAILED)" \
            $((SECONDS - started)) "$seed"
    done
    exit "$status"
fi
cargo build --release --locked --bins >&2
# The Python peer of `throughput --peer` (scripts/peer-consumer.py) runs in the broker's venv.
if [[ " $* " == *" --peer "* ]]; then
    .local/venv/bin/python -c 'import confluent_kafka, psycopg2' 2>/dev/null \
        || .local/venv/bin/pip install -q confluent-kafka psycopg2-binary >&2
fi
exec target/release/heartbeat-bench "$@"
