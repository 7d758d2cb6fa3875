#!/usr/bin/env bash
# Run the whole test suite: `scripts/test.sh [extra cargo test args]`.
#
# Makes sure PostgreSQL and NATS (JetStream) are running locally (see
# scripts/services.sh) and the drivers' validating mocks are installed (npm),
# then runs `cargo test --workspace --locked`. Tests
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

# The drivers' tests check every request against validating mocks generated
# from the peers' own API descriptions (Stoplight Prism, pinned in
# session-engine/tests/peers): installed with npm when missing, Node.js and
# npm from apt-get when those are. Without them the tests say they skip,
# except under CI=true, where they fail.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "test: need root for: $* (not root and no sudo)" >&2
        return 1
    fi
}

install_prism() {
    local peers=session-engine/tests/peers
    [[ -x "$peers/node_modules/.bin/prism" ]] && return 0
    if ! command -v npm >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 || {
            echo "test: no npm and no apt-get: install Node.js and npm yourself" >&2
            return 1
        }
        echo "test: apt-get install nodejs npm"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends nodejs npm || return 1
    fi
    echo "test: npm ci in $peers (Node.js $(node --version))"
    npm ci --prefix "$peers" --no-audit --no-fund
}

if ! install_prism; then
    if [[ "${CI:-}" == "true" ]]; then
        echo "test: the validating mocks of the drivers' peers could not be installed" >&2
        exit 1
    fi
    echo "test: the validating mocks of the drivers' peers could not be installed; their tests skip" >&2
fi

# The web console (scripts/console.sh): built first, so that the binary
# under test embeds it; then its unit tests (Vitest) and the budget of its
# first load. Its browser tests (tests/e2e/console.rs) drive Debian's
# Chromium, installed with apt-get when missing. Without Node.js or
# Chromium they say they skip, except under CI=true, where they fail; a
# failing console test fails the run after the cargo tests.
console_failed=0
if bash scripts/console.sh; then
    echo "test: console unit tests (vitest) and first-load budget"
    (cd console && npx vitest run && node scripts/size.mjs) || console_failed=1
else
    if [[ "${CI:-}" == "true" ]]; then
        echo "test: the console could not be built" >&2
        exit 1
    fi
    echo "test: the console could not be built; its tests skip" >&2
fi
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]]; then
    if command -v apt-get >/dev/null 2>&1; then
        echo "test: apt-get install chromium (for the console's browser tests)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends chromium || true
    fi
    if [[ ! -x "$chromium" ]]; then
        if [[ "${CI:-}" == "true" ]]; then
            echo "test: no Chromium at $chromium for the console's browser tests" >&2
            exit 1
        fi
        echo "test: no Chromium at $chromium; the console's browser tests skip" >&2
    fi
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
if (( console_failed )); then
    echo "test: the console's unit tests or budget failed (above)" >&2
    [[ "$status" -eq 0 ]] && status=1
fi
exit "$status"
