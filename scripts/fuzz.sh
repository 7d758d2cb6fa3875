#!/usr/bin/env bash
# Contract fuzz: `scripts/fuzz.sh [extra schemathesis run args]`.
#
# Runs schemathesis against the OpenAPI document the API serves
# (/openapi.json) and fails on any answer that breaks the contract:
#
#   not_a_server_error            no 5xx, whatever the input
#   status_code_conformance       every status answered is documented
#   content_type_conformance      ... with the documented content type
#   response_schema_conformance   ... and a body of the documented schema
#
# Builds the binary, pip-installs schemathesis into .data/fuzz-venv
# (python3-venv is apt-installed if missing), starts `wablast all` on a free
# port with a database, a nats-server (JetStream store in a temporary
# directory) and a NATS prefix of its own, seeds a tenant with data through
# the API (scripts/fuzz_seed.py: a linked simulator session, a contact list, a
# finished campaign and a draft, ...), fuzzes as that tenant, then stops
# everything and drops the database. Nothing it starts outlives it and it
# touches no other installation, so it can run beside the tests.
#
# The server's log, schemathesis' output and its JUnit report stay in
# .data/fuzz/ after the run.
#
# Environment (all optional):
#   WABLAST_FUZZ_MAX_TIME       time budget of the fuzzing, seconds (150)
#   WABLAST_FUZZ_MAX_EXAMPLES   most test cases per operation and phase (40)
#   WABLAST_FUZZ_SEED           schemathesis' seed (1; `random` for a new one
#                               each run: it is printed)
#   WABLAST_FUZZ_WORKERS        concurrent schemathesis workers (1: its worker
#                               threads parse Python source concurrently, which
#                               CPython before 3.11.8 can fail with "AST
#                               constructor recursion depth mismatch")
#   WABLAST_SKIP_SERVICES=1     PostgreSQL is managed elsewhere (see
#                               scripts/services.sh); a nats-server binary is
#                               still needed (WABLAST_NATS_SERVER)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

# The one schemathesis this script and its flags were written for.
SCHEMATHESIS_SPEC="schemathesis==4.32.5"
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_TIME="${WABLAST_FUZZ_MAX_TIME:-150}"
MAX_EXAMPLES="${WABLAST_FUZZ_MAX_EXAMPLES:-40}"
SEED="${WABLAST_FUZZ_SEED:-1}"
WORKERS="${WABLAST_FUZZ_WORKERS:-1}"
PG_PORT="${WABLAST_PG_PORT:-5432}"
VENV="$ROOT/.data/fuzz-venv"
OUT="$ROOT/.data/fuzz"
ADMIN_EMAIL="admin@fuzz.test"
ADMIN_PASSWORD="fuzz-admin-password"

log() { echo "fuzz: $*"; }
die() {
    echo "fuzz: ERROR: $*" >&2
    exit 1
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root for: $* (not root and no sudo)"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Does URL answer 200?
answers() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$1" 2>/dev/null
}

# Waits (bounded) until URL answers 200; gives up early when process PID died.
wait_ready() {
    local url="$1" pid="$2" what="$3" waited=0
    until answers "$url"; do
        kill -0 "$pid" 2>/dev/null || return 1
        ((waited < 180)) || return 1
        sleep 1
        waited=$((waited + 1))
    done
    log "$what ready after ${waited}s"
}

# ---------------------------------------------------------------- tools --

command -v python3 >/dev/null 2>&1 || die "python3 is needed (apt-get install python3)"

# PostgreSQL on PG_PORT, and a current nats-server binary (.data/nats-server-path).
bash scripts/services.sh --nats-binary
NATS_SERVER="${WABLAST_NATS_SERVER:-}"
if [[ -z "$NATS_SERVER" && -s .data/nats-server-path ]]; then
    NATS_SERVER="$(cat .data/nats-server-path)"
fi
[[ -n "$NATS_SERVER" && -x "$NATS_SERVER" ]] ||
    die "no nats-server binary (scripts/services.sh --nats-binary installs one; or set WABLAST_NATS_SERVER)"

log "cargo build --locked -p wablast"
cargo build --locked -p wablast
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/wablast"
[[ -x "$BIN" ]] || die "no binary at $BIN after the build"

if [[ ! -x "$VENV/bin/schemathesis" ]] || [[ "$(cat "$VENV/.wablast-pip-spec" 2>/dev/null)" != "$SCHEMATHESIS_SPEC" ]]; then
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        log "creating the Python virtual environment $VENV"
        mkdir -p "$(dirname "$VENV")"
        if ! python3 -m venv --clear "$VENV" >/dev/null 2>&1; then
            log "python3 cannot create a virtual environment: apt-get install python3-venv"
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
            python3 -m venv --clear "$VENV" || die "python3 -m venv $VENV failed"
        fi
    fi
    log "pip install '$SCHEMATHESIS_SPEC' into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$SCHEMATHESIS_SPEC" ||
        die "pip install '$SCHEMATHESIS_SPEC' failed (no access to PyPI?)"
    echo "$SCHEMATHESIS_SPEC" >"$VENV/.wablast-pip-spec"
fi
log "$("$VENV/bin/schemathesis" --version)"

# ------------------------------------------------------------- services --

RUN="$(mktemp -d "${TMPDIR:-/tmp}/wablast-fuzz.XXXXXX")"
SUFFIX="$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
DATABASE="wablast_fuzz_$SUFFIX"
PREFIX="fuzz$SUFFIX"
NATS_PID=""
SERVER_PID=""

cleanup() {
    local status=$?
    set +e
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    fi
    if [[ -n "$NATS_PID" ]]; then
        kill "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null
    fi
    psql -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
        -c "drop database if exists $DATABASE with (force)" >/dev/null 2>&1
    rm -rf "$RUN"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$OUT"
mkdir -p "$OUT"

NATS_PORT="$(free_port)"
"$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$RUN/nats" >"$OUT/nats-server.log" 2>&1 &
NATS_PID=$!

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
log "wablast all on $BASE (database $DATABASE, NATS 127.0.0.1:$NATS_PORT, prefix $PREFIX)"
# The server's settings are these alone: none of the caller's WABLAST_*.
unset_caller=()
while read -r name; do
    unset_caller+=(-u "$name")
done < <(compgen -e | grep '^WABLAST_' || true)
env "${unset_caller[@]}" \
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/$DATABASE?sslmode=disable" \
    NATS_URL="nats://127.0.0.1:$NATS_PORT" \
    WABLAST_NATS_PREFIX="$PREFIX" \
    WABLAST_LISTEN="127.0.0.1:$PORT" \
    WABLAST_DATA_DIR="$RUN/data" \
    WABLAST_JWT_SECRET="fuzz-$SUFFIX" \
    WABLAST_ADMIN_EMAIL="$ADMIN_EMAIL" \
    WABLAST_ADMIN_PASSWORD="$ADMIN_PASSWORD" \
    WABLAST_RATE_LIMIT_PER_KEY=10000000 \
    WABLAST_RATE_LIMIT_PER_IP=10000000 \
    WABLAST_LOG_FORMAT=json \
    RUST_LOG="${RUST_LOG:-info}" \
    "$BIN" all >"$OUT/server.log" 2>&1 &
SERVER_PID=$!

wait_ready "$BASE/readyz" "$SERVER_PID" "wablast" || {
    tail -n 40 "$OUT/server.log" >&2
    die "wablast did not become ready (log: $OUT/server.log)"
}

log "seeding a tenant"
python3 scripts/fuzz_seed.py "$BASE" "$ADMIN_EMAIL" "$ADMIN_PASSWORD" >"$RUN/seeded.json" || {
    tail -n 40 "$OUT/server.log" >&2
    die "seeding failed (log: $OUT/server.log)"
}
TOKEN="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["token"])' "$RUN/seeded.json")"

# The seeded rows' ids, as values the fuzzer tries half of the time for
# the id in the path of their own kind's routes (random ids the other half,
# for the 404s). DELETEs get random ids only: the rows stay for the rest.
python3 - "$RUN/seeded.json" >"$RUN/schemathesis.toml" <<'TOML'
import json
import sys

ids = json.load(open(sys.argv[1]))["ids"]
routes = {
    "sessions": ("^/api/v1/sessions/[{]id[}]", "path.id"),
    "campaigns": ("^/api/v1/campaigns/[{]id[}]", "path.id"),
    "contact_lists": ("^/api/v1/contact-lists/[{]id[}]", "path.id"),
    "auto_replies": ("^/api/v1/auto-replies/[{]id[}]", "path.id"),
    "api_keys": ("^/api/v1/api-keys/[{]id[}]", "path.id"),
    "media": ("^/api/v1/media/[{]id[}]", "path.id"),
    "webhooks": ("^/api/v1/webhooks/[{]id[}]", "path.id"),
    "hooks": ("^/hooks/", "path.session_id"),
}
ids["hooks"] = ids["sessions"]
for kind, values in ids.items():
    print(f"[dictionaries.{kind}]\nvalues = {json.dumps(values)}\n")
print("[parameters]")
print('"body.contact_list_id" = { dictionary = "contact_lists", probability = 0.5 }')
print('"body.media_id" = { dictionary = "media", probability = 0.5 }\n')
for kind, (path, parameter) in routes.items():
    print("[[operations]]")
    print(f"include-path-regex = {json.dumps(path)}")
    print('exclude-method = "DELETE"')
    print(f'parameters = {{ "{parameter}" = {{ dictionary = "{kind}", probability = 0.5 }} }}\n')
TOML

# ------------------------------------------------------------------ fuzz --

seed_args=()
[[ "$SEED" == "random" ]] || seed_args=(--seed "$SEED")

log "schemathesis run: $MAX_TIME s at most, $MAX_EXAMPLES examples per operation"
started=$SECONDS
status=0
# The event stream (SSE) never ends by design: it is left out. Run from
# .data/, where schemathesis keeps its cache (.schemathesis/: failures
# found, replayed first next time).
(cd "$ROOT/.data" && "$VENV/bin/schemathesis" --config-file "$RUN/schemathesis.toml" run "$BASE/openapi.json" \
    --checks "$CHECKS" \
    --header "Authorization: Bearer $TOKEN" \
    --exclude-path /api/v1/events \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --workers "$WORKERS" \
    --request-timeout 30 \
    "${seed_args[@]}" \
    --generation-database "$ROOT/.data/fuzz-examples" \
    --report junit --report-dir "$OUT" \
    --no-color \
    "$@") 2>&1 | tee "$OUT/schemathesis.log" || status=$?
took=$((SECONDS - started))

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "the server died during the fuzz (log: $OUT/server.log)"
    status=1
fi
if grep -q 'panicked' "$OUT/server.log"; then
    log "the server panicked during the fuzz:"
    grep 'panicked' "$OUT/server.log" | head -n 5
    status=1
fi
cases="$(sed -n 's/^ *\([0-9]*\) generated.*/\1/p' "$OUT/schemathesis.log" | tail -n 1)"
if ((status != 0)); then
    log "FAILED (exit $status) after $took s; server log, output and report in $OUT"
else
    log "passed: ${cases:-?} test cases in $took s"
fi
exit "$status"
