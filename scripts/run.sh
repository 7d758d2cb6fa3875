#!/usr/bin/env bash
# Run the whole system in one process (API + projector + engine):
# `scripts/run.sh`, then try http://127.0.0.1:8080/readyz.
#
# Makes sure PostgreSQL and NATS (JetStream) are running locally (see
# scripts/services.sh), builds the web console (scripts/console.sh), then
# runs `wablast all`, which applies pending
# migrations and creates the streams itself. Extra arguments are passed to
# `wablast all`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/wablast?sslmode=disable}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export WABLAST_LISTEN="${WABLAST_LISTEN:-127.0.0.1:8080}"
export WABLAST_DATA_DIR="${WABLAST_DATA_DIR:-.data}"
# A laptop's platform admin (grants points and plans): override both for
# anything that is not your own machine.
export WABLAST_ADMIN_EMAIL="${WABLAST_ADMIN_EMAIL:-admin@wablast.local}"
export WABLAST_ADMIN_PASSWORD="${WABLAST_ADMIN_PASSWORD:-admin-on-this-laptop}"
# Tokens that survive a restart: a secret kept in the data directory.
if [[ -z "${WABLAST_JWT_SECRET:-}" ]]; then
    mkdir -p "$WABLAST_DATA_DIR"
    if [[ ! -s "$WABLAST_DATA_DIR/jwt.secret" ]]; then
        (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$WABLAST_DATA_DIR/jwt.secret")
    fi
    WABLAST_JWT_SECRET="$(cat "$WABLAST_DATA_DIR/jwt.secret")"
    export WABLAST_JWT_SECRET
fi

bash scripts/services.sh

# The web console, embedded into the binary built next: without Node.js the
# binary still runs, and says at / how to build the console.
bash scripts/console.sh ||
    echo "run: the console could not be built; http://$WABLAST_LISTEN/ says how" >&2

echo "run: wablast all (listening on $WABLAST_LISTEN; admin $WABLAST_ADMIN_EMAIL)"
exec cargo run --release --locked -p wablast -- all "$@"
