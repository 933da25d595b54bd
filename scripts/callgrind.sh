#!/usr/bin/env bash
# callgrind.sh - the processor's instructions per reading, which repeat where timings do not.
#
# Usage: scripts/callgrind.sh [--customers C] [--records N]   (defaults 1,000 and 100,000)
#
# Runs `heartbeat-bench throughput` twice, over 20,000 readings and over N, with the processor's
# `run` under valgrind's callgrind: a copy of the bench in .local/callgrind/ finds a script named
# heartbeat-pipeline beside it, which runs the real binary under valgrind. The difference of the
# two totals over N - 20,000 is the cost of a reading without the start (TLS and SCRAM at each
# connection, about 1 G instructions). Prints both totals and that figure; the profiles stay in
# .local/callgrind/ for callgrind_annotate. A pass over 100,000 readings takes about a minute.
# Needs valgrind (apt-get install valgrind) and the services (scripts/services.sh up).
set -euo pipefail
cd "$(dirname "$0")/.."
customers=1000
records=100000
while [ $# -gt 0 ]; do
    case $1 in
        --customers) customers=$2; shift 2 ;;
        --records) records=$2; shift 2 ;;
        *) printf 'usage: scripts/callgrind.sh [--customers C] [--records N]\n' >&2; exit 2 ;;
    esac
done
base=20000
if [ "$records" -le "$base" ]; then
    printf 'callgrind.sh: --records must be more than %s\n' "$base" >&2
    exit 2
fi
command -v valgrind > /dev/null || { echo "callgrind.sh: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
scripts/services.sh up > /dev/null
eval "$(scripts/services.sh env)"
cargo build --release --locked --bins --quiet
dir=$PWD/.local/callgrind
rm -rf "$dir" && mkdir -p "$dir"
cp target/release/heartbeat-bench "$dir/"
cp target/release/heartbeat-pipeline "$dir/real-pipeline"
cat > "$dir/heartbeat-pipeline" <<EOS
#!/usr/bin/env bash
if [ "\$1" = run ]; then exec valgrind --tool=callgrind --callgrind-out-file="$dir/\$HEARTBEAT_CALLGRIND_OUT" "$dir/real-pipeline" "\$@"; fi
exec "$dir/real-pipeline" "\$@"
EOS
chmod +x "$dir/heartbeat-pipeline"
total() {
    HEARTBEAT_CALLGRIND_OUT=$1.out "$dir/heartbeat-bench" throughput --records "$2" --customers "$customers" > "$dir/$1.log" 2>&1
    callgrind_annotate "$dir/$1.out" 2> /dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
small=$(total small "$base")
large=$(total large "$records")
echo "processor instructions: $small over $base readings, $large over $records ($customers customers)"
echo "per reading, start excluded: $(( (large - small) / (records - base) ))"
echo "profiles: $dir/small.out, $dir/large.out (callgrind_annotate --inclusive=yes ...)"
