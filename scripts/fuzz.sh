#!/usr/bin/env bash
# fuzz.sh - fuzz the validator (cargo fuzz, libFuzzer) for a while and say whether it crashed.
#
# Usage: scripts/fuzz.sh [SECONDS]     (default 600)
#
# Runs the target `validate` (fuzz/fuzz_targets/validate.rs: arbitrary bytes into
# domain::validation::validate and customer_key, checking what must hold for every input) for
# SECONDS with libFuzzer, starting from the seed corpus fuzz/corpus/validate/ (tracked). What
# libFuzzer adds to the corpus goes to fuzz/target/corpus/validate/ (not tracked, kept between
# runs); a crash, with the input that made it, to fuzz/artifacts/validate/ (not tracked).
# Installs cargo-fuzz (crates.io) and the nightly toolchain it needs when they are missing. The
# fuzz crate builds on its own into fuzz/target: the first build takes about ten minutes.
# Exit 0 when nothing crashed, 1 when something did, 2 on bad usage. docs/TESTING.md.
#
# Without a sanitizer (`-s none`): the library pulls in rdkafka-sys, whose build links a test
# program against the zstd it builds, and with AddressSanitizer that zstd is instrumented and
# the link fails. The validator is safe Rust, so ASan would find little; libFuzzer's coverage
# still steers, and the build keeps debug assertions and overflow checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-600}
if [[ ! $seconds =~ ^[0-9]+$ ]] || (($# > 1)); then
    printf 'usage: scripts/fuzz.sh [SECONDS]\n' >&2
    exit 2
fi
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal >&2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked >&2
fi
root=$PWD
work=$root/fuzz/target/corpus/validate
log=$root/fuzz/target/fuzz-validate.log
mkdir -p "$work" "$root/fuzz/artifacts/validate"
cargo +nightly fuzz build -s none validate >&2
printf 'fuzzing validate for %s s (log %s) ...\n' "$seconds" "${log#"$root"/}"
status=0
cargo +nightly fuzz run -s none validate "$work" "$root/fuzz/corpus/validate" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
runs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n 1 || true)
if ((status == 0)); then
    printf 'fuzz validate: no crash (%s; corpus %s inputs)\n' "${runs:-no run count}" \
        "$(find "$work" -type f | wc -l)"
    exit 0
fi
grep -A1 -E 'panicked at' "$log" | head -n 4 >&2 || true
printf 'fuzz validate: CRASH (exit %s); input in fuzz/artifacts/validate/, log %s\n' \
    "$status" "${log#"$root"/}"
printf 'replay: cargo +nightly fuzz run -s none validate fuzz/artifacts/validate/<file>\n'
exit 1
