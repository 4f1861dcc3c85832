#!/usr/bin/env bash
# The storefront's journeys in a real, headless Chromium (tests/browser, pytest + Selenium),
# against `eventhive dev` on the embedded backend. Chromium and its driver are Debian's
# packages, installed here when missing; nothing downloads a browser. Selenium and pytest,
# pinned, go to a virtualenv under ~/.cache/eventhive, installed when missing.
#
#   bash scripts/browser-tests.sh [pytest arguments]
#
# Expects `eventhive` built (cargo build --bin eventhive) in $CARGO_TARGET_DIR (or target/).
# EVENTHIVE_SCREENSHOTS=docs/screenshots saves a screenshot of each page the journeys visit.
set -euo pipefail
cd "$(dirname "$0")/.."

SELENIUM_VERSION=4.45.0
PYTEST_VERSION=9.2.0

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing Debian's chromium and chromium-driver"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

TOOLS="${EVENTHIVE_BROWSER_TOOLS:-$HOME/.cache/eventhive/browser-tools}"
installed() { "$TOOLS/bin/python" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
if [ "$(installed selenium)" != "$SELENIUM_VERSION" ] || [ "$(installed pytest)" != "$PYTEST_VERSION" ]; then
    echo "== installing selenium $SELENIUM_VERSION and pytest $PYTEST_VERSION into $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check "selenium==$SELENIUM_VERSION" "pytest==$PYTEST_VERSION"
fi

# axe-core, for the accessibility check, at the exact version of tests/browser/package-lock.json
# (npm ci checks its integrity), installed beside the Python tools when the lock file changed.
AXE_TOOLS="$TOOLS/npm"
if ! cmp -s tests/browser/package-lock.json "$AXE_TOOLS/package-lock.json" ||
    [ ! -f "$AXE_TOOLS/node_modules/axe-core/axe.min.js" ]; then
    if ! command -v npm >/dev/null; then
        echo "== installing Debian's nodejs and npm"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    fi
    echo "== installing axe-core (tests/browser/package-lock.json) into $AXE_TOOLS"
    mkdir -p "$AXE_TOOLS"
    cp tests/browser/package.json tests/browser/package-lock.json "$AXE_TOOLS/"
    (cd "$AXE_TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
fi

SCRIPT=browser-tests
source scripts/lib/dev-server.sh
PORT="${EVENTHIVE_BROWSER_PORT:-18580}"

# The services behind the gateway listen where the OS says, so a platform already running on
# this machine (another checkout's `eventhive dev`) is no obstacle.
INTERNAL_PORTS=()
for service in identity catalog ticketing payments notifications analytics waiting_room; do
    INTERNAL_PORTS+=("EVENTHIVE_${service^^}_PORT=0")
done
# The script's own variables are not settings of EventHive, which refuses unknown ones.
env -u EVENTHIVE_BROWSER_TOOLS -u EVENTHIVE_BROWSER_PORT -u EVENTHIVE_SCREENSHOTS \
    EVENTHIVE_PASSWORD_HASH_MEMORY_KIB=1024 EVENTHIVE_PASSWORD_HASH_ITERATIONS=1 \
    EVENTHIVE_METRICS_ENABLED=false RUST_LOG=warn \
    "${INTERNAL_PORTS[@]}" \
    "$BINARY" dev --port "$PORT" --data-dir "$WORK/data" >"$WORK/eventhive.log" 2>&1 &
SERVER=$!
URL="http://127.0.0.1:$PORT"
# Ready once the demo buyer can log in (the demo data is seeded after readiness).
ready=""
for _ in $(seq 1 240); do
    kill -0 "$SERVER" 2>/dev/null || break
    if curl -fs "$URL/v1/auth/login" -H 'content-type: application/json' \
        -d '{"email":"buyer@eventhive.dev","password":"eventhive-demo"}' >/dev/null 2>&1 &&
        curl -fs "$URL/v1/events?q=canal" | grep -q 'Jazz by the Canal'; then
        ready=yes
        break
    fi
    sleep 0.5
done
[ -n "$ready" ] || { echo "browser-tests: eventhive dev did not come up; its log:" >&2; tail -20 "$WORK/eventhive.log" >&2; exit 1; }

echo "== browser journeys against $URL (Chromium $(chromium --version 2>/dev/null | awk '{print $2}'))"
status=0
EVENTHIVE_WEB_URL="$URL" EVENTHIVE_AXE_JS="$AXE_TOOLS/node_modules/axe-core/axe.min.js" "$TOOLS/bin/python" -m pytest -p no:cacheprovider -q tests/browser "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "browser-tests: failed; the server's errors:" >&2
    grep -E "ERROR|panicked" "$WORK/eventhive.log" | tail -40 >&2 || true
fi
exit "$status"
