#!/usr/bin/env bash
# Make sure the services wablast needs are listening locally:
#
#   PostgreSQL                 on 127.0.0.1:5432 (user postgres, no password)
#   NATS with JetStream        on 127.0.0.1:4222
#
# Meant for a developer laptop or a CI machine (Debian/Ubuntu): whatever is
# missing is installed with apt-get and started in the background (no systemd
# needed). A service whose port already answers is left alone. Safe to run
# any number of times; may be executed or sourced.
#
# Options:
#   --nats-binary   also make sure the nats-server binary is installed, even
#                   when something else already listens on the NATS port
#                   (some tests start a private nats-server of their own).
#
# Environment (all optional; the defaults just work):
#   WABLAST_SKIP_SERVICES=1     do nothing (services are managed elsewhere)
#   WABLAST_PG_PORT             PostgreSQL port                 (5432)
#   WABLAST_PG_CLUSTER          Debian cluster name to create/start (main)
#   WABLAST_PG_DATABASE         database to create if missing   (wablast;
#                               empty: create none)
#   WABLAST_NATS_PORT           NATS client port                (4222)
#   WABLAST_NATS_STORE_DIR      JetStream store directory
#                               (root: /var/lib/nats-server,
#                                else: ~/.local/state/wablast/nats)
#   WABLAST_NATS_LOG            NATS log file
#                               (root: /var/log/nats-server.log,
#                                else: <store dir>/nats-server.log)
#   WABLAST_SERVICES_TIMEOUT    seconds to wait for each service (60)

# Sourced? Run in a child bash so that our shell options and `exit` do not
# leak into the caller's shell.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    bash "${BASH_SOURCE[0]}" "$@"
    return $?
fi

set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT="${WABLAST_PG_PORT:-5432}"
PG_CLUSTER="${WABLAST_PG_CLUSTER:-main}"
PG_DATABASE="${WABLAST_PG_DATABASE-wablast}"
NATS_HOST=127.0.0.1
NATS_PORT="${WABLAST_NATS_PORT:-4222}"
TIMEOUT="${WABLAST_SERVICES_TIMEOUT:-60}"

if [[ "$(id -u)" -eq 0 ]]; then
    NATS_STORE_DIR="${WABLAST_NATS_STORE_DIR:-/var/lib/nats-server}"
    NATS_LOG="${WABLAST_NATS_LOG:-/var/log/nats-server.log}"
else
    NATS_STORE_DIR="${WABLAST_NATS_STORE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/wablast/nats}"
    NATS_LOG="${WABLAST_NATS_LOG:-$NATS_STORE_DIR/nats-server.log}"
fi

WANT_NATS_BINARY=0
for arg in "$@"; do
    case "$arg" in
        --nats-binary) WANT_NATS_BINARY=1 ;;
        -h | --help)
            sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
            exit 0
            ;;
        *)
            echo "services.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

# The Debian binaries live in sbin and in versioned directories: look there too.
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "services: $*"; }
die() {
    echo "services: ERROR: $*" >&2
    exit 1
}

# ---------------------------------------------------------------- helpers --

# Is something listening on host:port? (bash's /dev/tcp, no extra tools)
listening() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# wait_for_port NAME HOST PORT: bounded wait until HOST:PORT accepts connections.
wait_for_port() {
    local name="$1" host="$2" port="$3" waited=0
    until listening "$host" "$port"; do
        if ((waited >= TIMEOUT)); then
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "$name: listening on $host:$port"
}

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (not root and no sudo)"
    fi
}

can_be_root() {
    [[ "$(id -u)" -eq 0 ]] || command -v sudo >/dev/null 2>&1
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found: install $* yourself (this script knows Debian/Ubuntu only)"
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
            die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" ||
        die "apt-get install $* failed"
}

# ------------------------------------------------------------- PostgreSQL --

pg_installed() {
    command -v pg_ctlcluster >/dev/null 2>&1 &&
        command -v pg_createcluster >/dev/null 2>&1 &&
        compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

# Newest installed server version (e.g. 15).
pg_newest_version() {
    local dir versions=()
    for dir in /usr/lib/postgresql/*/bin/postgres; do
        [[ -x "$dir" ]] || continue
        dir="${dir#/usr/lib/postgresql/}"
        versions+=("${dir%%/*}")
    done
    ((${#versions[@]} > 0)) || return 1
    printf '%s\n' "${versions[@]}" | sort -n | tail -n 1
}

# Print "VERSION NAME" of the Debian cluster matching NAME or PORT, if any.
pg_find_cluster() {
    local by="$1" want="$2" ver name port rest
    command -v pg_lsclusters >/dev/null 2>&1 || return 1
    while read -r ver name port rest; do
        if [[ "$by" == name && "$name" == "$want" ]] ||
            [[ "$by" == port && "$port" == "$want" ]]; then
            echo "$ver $name"
            return 0
        fi
    done < <(pg_lsclusters --no-header 2>/dev/null)
    return 1
}

# psql against the server as user postgres with no password. Prints the
# result, or on failure the error (stderr is kept apart: Debian's psql wrapper
# may print warnings there even when the query works).
pg_query() {
    local err out rc=0
    err="$(mktemp)"
    out="$(PGCONNECT_TIMEOUT=5 psql -w -X -q -t -A -v ON_ERROR_STOP=1 \
        "postgres://postgres@$PG_HOST:$PG_PORT/postgres" -c "$1" 2>"$err")" || rc=$?
    if ((rc == 0)); then
        printf '%s\n' "$out"
    else
        cat "$err"
    fi
    rm -f "$err"
    return "$rc"
}

pg_start() {
    can_be_root ||
        die "postgres: nothing listens on $PG_HOST:$PG_PORT, and starting it needs root (not root, no sudo). Start PostgreSQL yourself, or run this script as root."
    if ! pg_installed; then
        log "postgres: not installed"
        apt_install postgresql postgresql-client
    fi
    pg_installed || die "postgres: installation did not provide pg_ctlcluster/postgres"

    local cluster ver name
    if cluster="$(pg_find_cluster name "$PG_CLUSTER")"; then
        read -r ver name <<<"$cluster"
    else
        ver="$(pg_newest_version)" || die "postgres: no server version found under /usr/lib/postgresql"
        name="$PG_CLUSTER"
        log "postgres: creating cluster $ver/$name on port $PG_PORT"
        as_root pg_createcluster --port "$PG_PORT" "$ver" "$name" >/dev/null ||
            die "postgres: pg_createcluster $ver $name failed"
    fi

    local port
    port="$(pg_lsclusters --no-header 2>/dev/null | awk -v v="$ver" -v n="$name" '$1 == v && $2 == n { print $3 }')"
    if [[ -n "$port" && "$port" != "$PG_PORT" ]]; then
        die "postgres: cluster $ver/$name is configured for port $port, not $PG_PORT (set WABLAST_PG_PORT=$port, or pick another WABLAST_PG_CLUSTER)"
    fi

    # Exit code 3 = cluster not running.
    if as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" status >/dev/null 2>&1; then
        log "postgres: cluster $ver/$name already running, waiting for it"
    else
        log "postgres: starting cluster $ver/$name"
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start ||
            die "postgres: could not start cluster $ver/$name (see /var/log/postgresql/postgresql-$ver-$name.log)"
    fi

    wait_for_port postgres "$PG_HOST" "$PG_PORT" ||
        die "postgres: not listening on $PG_HOST:$PG_PORT after ${TIMEOUT}s (see /var/log/postgresql/postgresql-$ver-$name.log)"
    log "postgres: started"
}

# Let user postgres connect over TCP from localhost without a password.
pg_ensure_trust() {
    if ! command -v psql >/dev/null 2>&1; then
        log "postgres: psql not found, cannot check password-less login (install postgresql-client)"
        return 0
    fi

    local out waited=0
    # The server may accept TCP before it accepts logins ("starting up").
    while ! out="$(pg_query 'select 1')"; do
        if grep -qiE 'authentication|password' <<<"$out"; then
            break
        fi
        if ((waited >= TIMEOUT)); then
            die "postgres: cannot connect to $PG_HOST:$PG_PORT: $out"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    if [[ "$out" == 1 ]]; then
        log "postgres: password-less login as postgres works"
        return 0
    fi

    # A fresh Debian cluster asks for a password (scram-sha-256) on host
    # connections. THIS IS A DEV/CI MACHINE: switch the loopback host lines of
    # the cluster's pg_hba.conf to `trust`, so postgres@127.0.0.1 needs no
    # password. Never do this on a shared or production server.
    local cluster ver name hba
    cluster="$(pg_find_cluster port "$PG_PORT")" ||
        die "postgres: login as postgres@$PG_HOST:$PG_PORT needs a password, and no Debian cluster on that port to fix ($out). Allow trust for 127.0.0.1 in pg_hba.conf, or set DATABASE_URL with a password."
    read -r ver name <<<"$cluster"
    hba="/etc/postgresql/$ver/$name/pg_hba.conf"
    if ! can_be_root || ! as_root test -w "$hba"; then
        die "postgres: login needs a password and $hba is not writable by us ($out)"
    fi

    log "postgres: login needs a password; setting 127.0.0.1/::1 host lines of $hba to trust (dev/CI only)"
    as_root test -e "$hba.wablast-orig" || as_root cp -p "$hba" "$hba.wablast-orig"
    as_root sed -i -E \
        's#^([[:space:]]*host[a-z]*[[:space:]]+[^[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+(127\.0\.0\.1/32|::1/128)[[:space:]]+)[^[:space:]]+#\1trust#' \
        "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload ||
        die "postgres: reload of cluster $ver/$name failed"

    waited=0
    until out="$(pg_query 'select 1')" && [[ "$out" == 1 ]]; do
        if ((waited >= 10)); then
            die "postgres: still cannot log in as postgres@$PG_HOST:$PG_PORT without a password: $out (check $hba)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    log "postgres: password-less login as postgres works"
}

pg_ensure_database() {
    [[ -n "$PG_DATABASE" ]] || return 0
    command -v psql >/dev/null 2>&1 || return 0
    [[ "$PG_DATABASE" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] ||
        die "postgres: WABLAST_PG_DATABASE must be a plain identifier, got '$PG_DATABASE'"
    local out
    out="$(pg_query "select 1 from pg_database where datname = '$PG_DATABASE'")" ||
        die "postgres: cannot query databases: $out"
    if [[ "$out" == 1 ]]; then
        return 0
    fi
    # Two runs may race here: "already exists" is fine.
    if out="$(pg_query "create database \"$PG_DATABASE\"")"; then
        log "postgres: created database $PG_DATABASE"
    elif ! grep -q 'already exists' <<<"$out"; then
        die "postgres: cannot create database $PG_DATABASE: $out"
    fi
}

ensure_postgres() {
    if listening "$PG_HOST" "$PG_PORT"; then
        log "postgres: already listening on $PG_HOST:$PG_PORT"
    else
        pg_start
    fi
    pg_ensure_trust
    pg_ensure_database
}

# ------------------------------------------------------------------- NATS --

nats_binary() {
    local candidate
    for candidate in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/bin/nats-server; do
        if [[ -n "$candidate" && -x "$candidate" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

ensure_nats_binary() {
    if ! nats_binary >/dev/null; then
        log "nats: nats-server not installed"
        apt_install nats-server
        nats_binary >/dev/null || die "nats: package nats-server did not provide a nats-server binary"
    fi
}

nats_start() {
    ensure_nats_binary
    local bin pidfile
    bin="$(nats_binary)"
    mkdir -p "$NATS_STORE_DIR" "$(dirname "$NATS_LOG")"
    pidfile="$NATS_STORE_DIR/nats-server-$NATS_PORT.pid"
    local args=(-a "$NATS_HOST" -p "$NATS_PORT" -js -sd "$NATS_STORE_DIR" -l "$NATS_LOG")

    log "nats: starting $bin ${args[*]}"
    if command -v start-stop-daemon >/dev/null 2>&1; then
        # Match on our pid file, not on the executable: another nats-server
        # (e.g. a test's private one) may run from the same binary.
        start-stop-daemon --start --oknodo --background \
            --make-pidfile --pidfile "$pidfile" \
            --exec "$bin" -- "${args[@]}" ||
            die "nats: start-stop-daemon failed (see $NATS_LOG)"
    else
        local detach=()
        command -v setsid >/dev/null 2>&1 && detach=(setsid)
        nohup "${detach[@]}" "$bin" "${args[@]}" </dev/null >>"$NATS_LOG" 2>&1 &
        echo $! >"$pidfile"
        disown || true
    fi

    if ! wait_for_port nats "$NATS_HOST" "$NATS_PORT"; then
        tail -n 20 "$NATS_LOG" >&2 2>/dev/null || true
        die "nats: not listening on $NATS_HOST:$NATS_PORT after ${TIMEOUT}s (see $NATS_LOG)"
    fi
    log "nats: started (JetStream store $NATS_STORE_DIR, log $NATS_LOG)"
}

ensure_nats() {
    if listening "$NATS_HOST" "$NATS_PORT"; then
        log "nats: already listening on $NATS_HOST:$NATS_PORT"
    else
        nats_start
    fi
    if ((WANT_NATS_BINARY)); then
        ensure_nats_binary
    fi
}

# ------------------------------------------------------------------- main --

if [[ "${WABLAST_SKIP_SERVICES:-0}" == 1 ]]; then
    log "WABLAST_SKIP_SERVICES=1: not checking or starting anything"
    if ((WANT_NATS_BINARY)) && ! nats_binary >/dev/null; then
        log "warning: nats-server binary not found; tests that start their own nats-server will fail"
    fi
    exit 0
fi

ensure_postgres
ensure_nats
log "ready: postgres $PG_HOST:$PG_PORT, nats $NATS_HOST:$NATS_PORT"
