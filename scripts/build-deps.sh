#!/usr/bin/env bash
# build-deps.sh - make sure this Debian machine can build heartbeat-pipeline.
#
# Usage: scripts/build-deps.sh [--test]
#
# Checks for a Rust toolchain (cargo; it cannot be installed from here: see the message) and
# installs with apt-get what the crates' C parts need when it is missing: a C compiler and make
# (librdkafka, zstd), pkg-config, libpq (diesel's PostgreSQL driver links it) and OpenSSL's
# headers (libssl-dev: librdkafka's TLS and SASL/SCRAM); and alertmanager and amtool
# (prometheus-alertmanager), for the local Alertmanager that scripts/services.sh starts and
# scripts/run.sh's pipeline delivers to, and for the delivery tests and the Alertmanager config
# check.
# With --test (scripts/test.sh), also diesel_cli (cargo install, for the schema.rs check), what
# the deployment checks need: promtool (Debian package prometheus), PyYAML and jsonschema
# (python3-yaml, python3-jsonschema) for deploy/check-compose.py; and what the security tests
# need: the openssl command (test CAs and certificates) and stunnel4 (the TLS-terminating proxy
# in front of the test broker). The two server packages would start their packaged server where
# an init system lets them; the tests and scripts/services.sh start their own, so a server one of
# them started here is stopped and disabled again.
# Idempotent and quick when everything is there. Runs apt-get as root, or through sudo, with
# --no-install-recommends, and only when a package is missing: never as an upgrade (an upgrade of
# postgresql-15 under the running server breaks it).
set -euo pipefail

test_deps=false
case ${1:-} in
    "") ;;
    --test) test_deps=true ;;
    *) printf 'usage: scripts/build-deps.sh [--test]\n' >&2; exit 2 ;;
esac

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

# OpenSSL for librdkafka's `ssl` feature (TLS, SASL/SCRAM); pkg-config finds it through openssl.pc.
if ! pkg-config --exists openssl 2>/dev/null; then
    missing+=(libssl-dev)
fi

# scripts/services.sh starts a local Alertmanager (prometheus-alertmanager brings it as
# /usr/bin/prometheus-alertmanager) for the quick start, the delivery tests start their own on
# loopback ports, and scripts/test.sh runs `amtool check-config` on
# deploy/alertmanager/alertmanager.yml. 0.25 on Debian 12, the version the compose file pins. It
# depends on adduser, tzdata and libc6 only (about 42 MB); its postinst adds a system user
# `prometheus` and asks init to start the packaged server (/etc/prometheus/alertmanager.yml,
# :9093 and its cluster port :9094 on every interface): without systemd, a policy-rc.d that
# refuses starts (as in Docker images, and here) starts nothing; elsewhere it is stopped below.
if ! command -v amtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
    missing+=(prometheus-alertmanager)
fi

if $test_deps; then
    # tests/it/security/ makes its CAs and certificates with the openssl command and puts
    # stunnel4 in front of a private broker (tansu's own TLS listener does not answer librdkafka).
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || missing+=(stunnel4)
    # promtool has no package of its own; prometheus brings it (with the server, not started, and
    # a few small libjs-* packages for its web UI; its recommended node exporter is left out).
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    # deploy/check-compose.py runs under python3 and falls back to Debian's /usr/bin/python3
    # (where python3-yaml and python3-jsonschema install) when the python3 on PATH (e.g. pyenv's)
    # lacks PyYAML or jsonschema (it validates against deploy/schema/compose-spec.json).
    if ! python3 -c 'import yaml, jsonschema' >/dev/null 2>&1; then
        /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
        /usr/bin/python3 -c 'import jsonschema' >/dev/null 2>&1 || missing+=(python3-jsonschema)
    fi
fi

if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    sudo_cmd=()
    [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The servers these packages bring are not wanted running (the tests start their own on ports
    # of their own, scripts/services.sh its own Alertmanager on :9093): stop and disable one that
    # init started just now. Only a package this run installed: a server someone set up before is
    # left alone.
    for pkg in "${missing[@]}"; do
        case $pkg in prometheus|prometheus-alertmanager) ;; *) continue ;; esac
        if [[ -d /run/systemd/system ]]; then
            log "stopping and disabling the $pkg service (the tests start their own)"
            "${sudo_cmd[@]}" systemctl disable --now "$pkg" >/dev/null 2>&1 || true
        elif [[ -x /etc/init.d/$pkg ]]; then
            # invoke-rc.d asks policy-rc.d as for the start: where it refused that, this is a no-op.
            "${sudo_cmd[@]}" invoke-rc.d "$pkg" stop >/dev/null 2>&1 || true
            "${sudo_cmd[@]}" update-rc.d "$pkg" disable >/dev/null 2>&1 || true
        fi
    done
fi

# diesel_cli for the schema check of scripts/test.sh (src/db/schema.rs against `diesel print-schema`
# of the migrations), PostgreSQL only (links the libpq checked for above). Skipped when `diesel`
# answers; else built from crates.io into ~/.cargo/bin: about 4 minutes on 2 cores, once per machine.
if $test_deps; then
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! diesel --version >/dev/null 2>&1; then
        log "installing diesel_cli 2.3.14 (cargo install, a few minutes)"
        cargo install diesel_cli --version 2.3.14 --no-default-features --features postgres --locked --quiet \
            || die "cargo install diesel_cli failed: see its output above"
    fi
fi
