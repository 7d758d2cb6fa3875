#!/usr/bin/env bash
# Run the whole system in one process (API + projector + engine):
# `scripts/run.sh`, then try http://127.0.0.1:8080/readyz.
#
# Makes sure PostgreSQL and NATS (JetStream) are running locally (see
# scripts/services.sh), then runs `wablast all`, which applies pending
# migrations and creates the streams itself. Extra arguments are passed to
# `wablast all`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/wablast}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export WABLAST_LISTEN="${WABLAST_LISTEN:-127.0.0.1:8080}"

bash scripts/services.sh

echo "run: wablast all (listening on $WABLAST_LISTEN)"
exec cargo run --release --locked -p wablast -- all "$@"
