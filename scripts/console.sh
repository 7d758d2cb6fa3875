#!/usr/bin/env bash
# Build the web console (console/) into console/dist, which the wablast
# binary embeds when it is compiled: `scripts/console.sh`.
#
# Installs Node.js and npm from apt-get when they are missing (as root or
# through sudo), installs the console's packages exactly as locked (`npm
# ci`, skipped while node_modules matches the lock), type-checks and builds
# it. scripts/run.sh and scripts/test.sh run it before cargo.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "console: need root for: $* (not root and no sudo)" >&2
        return 1
    fi
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || {
        echo "console: no npm and no apt-get: install Node.js and npm yourself" >&2
        exit 1
    }
    echo "console: apt-get install nodejs npm"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends nodejs npm
fi
# Vite 5 and the rest of the tool chain need Node.js 18 (Debian 12's).
major="$(node -p 'process.versions.node.split(".")[0]')"
if (( major < 18 )); then
    echo "console: Node.js $(node --version) is too old; 18 or newer is needed" >&2
    exit 1
fi

cd console
# npm writes node_modules/.package-lock.json on install: newer than the
# lock, the packages are the locked ones.
if [[ ! node_modules/.package-lock.json -nt package-lock.json ]]; then
    echo "console: npm ci (Node.js $(node --version))"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi
echo "console: npm run build"
npm run build --silent
