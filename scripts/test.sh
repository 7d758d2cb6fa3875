#!/usr/bin/env bash
# Run the whole test suite: `scripts/test.sh [extra cargo test args]`.
#
# Makes sure PostgreSQL and NATS (JetStream) are running locally (see
# scripts/services.sh), then runs `cargo test --workspace --locked`. Tests
# create their own fresh databases and NATS prefixes; some start a private
# nats-server, so a current nats-server binary (2.10.0 or newer) is installed
# even when another NATS already listens on the default port, and its path is
# passed to them in WABLAST_NATS_SERVER.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/wablast?sslmode=disable}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"

bash scripts/services.sh --nats-binary
# The binary services.sh chose, for the tests' private nats-servers.
if [[ -s .data/nats-server-path ]]; then
    WABLAST_NATS_SERVER="$(cat .data/nats-server-path)"
    export WABLAST_NATS_SERVER
    echo "test: WABLAST_NATS_SERVER=$WABLAST_NATS_SERVER"
fi

echo "test: cargo test --workspace --locked --no-fail-fast $*"
# cargo prints one result line per test binary, the last often an empty
# doc-test run: end with the totals so the outcome reads at a glance.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
