#!/usr/bin/env bash
# build-deps.sh - make sure this Debian machine can build heartbeat-pipeline.
#
# Usage: scripts/build-deps.sh
#
# Checks for a Rust toolchain (cargo; it cannot be installed from here: see the message) and
# installs with apt-get what the crates' C parts need when it is missing: a C compiler and make
# (librdkafka, zstd), pkg-config, and libpq (diesel's PostgreSQL driver links it).
# Idempotent and quick when everything is there. Runs apt-get as root, or through sudo.
set -euo pipefail

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
log() { printf '[build-deps] %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
    [[ -x "$HOME/.cargo/bin/cargo" ]] || die "cargo not found: install a Rust toolchain (1.80 or newer, e.g. with rustup) and put cargo on PATH"
fi

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
# libpq: the shared library and its development link (libpq.so) for pq-sys. The listing is
# captured first: `ldconfig -p | grep -q` under pipefail fails whenever grep stops reading early
# (SIGPIPE), which once made this script reinstall libpq-dev and upgrade PostgreSQL under a
# running server.
libs=$(ldconfig -p 2>/dev/null || true)
if [[ $libs != *"libpq.so ("* ]]; then
    missing+=(libpq-dev)
fi

if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
